"""The report's warnings: a search without signal, a test score below a constant baseline."""

from redsm5_hpo.evaluation.verdicts import below_baselines, no_signal, result_warnings


def test_every_trial_at_the_worst_value_is_no_signal() -> None:
    found = no_signal([0.0, 0.0, 0.0], "maximize", "val_criteria_macro_f1")
    assert found is not None and "no signal" in found and "worst possible" in found
    assert no_signal([0.0], "maximize", "val_criteria_macro_f1") is not None  # one trial at 0 too


def test_all_trials_tied_is_no_signal_and_a_spread_is_fine() -> None:
    tied = no_signal([0.4, 0.4], "maximize", "val_criteria_macro_f1")
    assert tied is not None and "tie rule" in tied and "all 2 trials" in tied
    assert no_signal([0.4, 0.41], "maximize", "m") is None
    assert no_signal([0.4], "maximize", "m") is None
    assert no_signal([], "maximize", "m") is None
    assert no_signal([0.0, 0.3], "maximize", "m") is None
    assert no_signal([0.0], "minimize", "val_loss") is None  # a loss of 0 is the best, not the worst


def test_a_test_score_below_a_constant_baseline_is_named() -> None:
    found = below_baselines(
        {"test_criteria_macro_f1": 0.133}, {"all_positive_macro_f1": 0.160, "majority_macro_f1": 0.0}
    )
    assert found == [
        "test macro-F1 0.133 is below the all-positive baseline (0.160): "
        "the model does worse than a constant prediction"
    ]
    assert below_baselines({"test_criteria_macro_f1": 0.5}, {"all_positive_macro_f1": 0.160}) == []


def test_the_warnings_come_together_in_one_list() -> None:
    warnings = result_warnings(
        [0.0, 0.0], "maximize", "m", {"test_criteria_macro_f1": 0.1}, {"all_positive_macro_f1": 0.16}
    )
    assert len(warnings) == 2 and "no signal" in warnings[0] and "all-positive" in warnings[1]
