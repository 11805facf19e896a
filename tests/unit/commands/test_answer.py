"""The answer printed at the end of a study: the trials table, the best parameters, warnings, next commands."""

import shlex

from redsm5_hpo.cli.main import build_parser
from redsm5_hpo.commands.answer import answer_lines, short, trials_table


def report(warnings=()):
    history = [
        {
            "trial": 1,
            "state": "complete",
            "value": 0.61,
            "best_so_far": 0.61,
            "trial_id": "a",
            "params": {"train.lr_encoder": 8.637740655039981e-05, "model.head_hidden": 128},
        },
        {
            "trial": 2,
            "state": "pruned",
            "value": None,
            "best_so_far": 0.61,
            "trial_id": "b",
            "params": {"train.lr_encoder": 1.2e-4, "model.head_hidden": 256},
        },
        {
            "trial": 3,
            "state": "complete",
            "value": 0.7345678,
            "best_so_far": 0.7345678,
            "trial_id": "c",
            "params": {"train.lr_encoder": 3e-5, "model.head_hidden": 64},
        },
    ]
    return {
        "study_id": "s1",
        "best_trial_id": "c",
        "optimization_metric": "val_criteria_macro_f1",
        "best_validation_value": 0.7345678,
        "best_params": {"train.lr_encoder": 3e-5, "model.head_hidden": 64},
        "test_metrics": {"test_criteria_macro_f1": 0.5, "test_criteria_micro_f1": 0.6, "test_evidence_f1": 0.7},
        "baselines": {"all_positive_macro_f1": 0.16},
        "trials": {"requested": 3, "completed": 2, "pruned": 1, "failed": 0},
        "summary": {"best_value_history": history, "pruned": [], "failed": []},
        "warnings": list(warnings),
    }


def test_parameters_print_at_four_significant_digits() -> None:
    assert short(8.637740655039981e-05) == "8.638e-05"
    assert short(0.17751303) == "0.1775"
    assert short(128) == "128" and short("adamw") == "adamw"


def test_the_table_has_one_row_per_trial_numbered_from_one_with_the_best_marked() -> None:
    header, *rows = trials_table(report())
    assert header.split() == ["trial", "state", "val_criteria_macro_f1", "model.head_hidden", "train.lr_encoder"]
    assert [row.split()[0] for row in rows] == ["1", "2", "*"]
    assert rows[0].split() == ["1", "complete", "0.61", "128", "8.638e-05"]
    assert rows[1].split() == ["2", "pruned", "-", "256", "0.00012"]
    assert rows[2].split() == ["*", "3", "complete", "0.7346", "64", "3e-05"]
    assert header.index("train.lr_encoder") == rows[0].index("8.638e-05") == rows[2].index("3e-05")  # aligned


def test_the_answer_names_the_best_parameters_warnings_and_next_commands(tmp_path) -> None:
    lines = answer_lines(report(["the search had no signal"]), tmp_path / "study_s1")
    assert "best trial 3 (c): val_criteria_macro_f1 = 0.7346" in lines
    assert "best parameters: model.head_hidden=64 train.lr_encoder=3e-05" in lines
    assert "warning: the search had no signal" in lines
    commands = [line.strip() for line in lines[lines.index("next:") + 1 :]]
    assert [c.split()[1] for c in commands] == ["predict", "export", "ui"]
    for command in commands:  # each parses as the CLI reads it, with the study and where it lives
        args, extra = build_parser().parse_known_args(shlex.split(command)[1:])
        assert args.study == "study_s1" and f"experiments_dir={tmp_path}" in [*args.overrides, *extra]


def confirmed_report():
    base = report()
    for stage, entry in zip(("baseline", "search", "confirm"), base["summary"]["best_value_history"], strict=True):
        entry["stage"] = stage
    spread = {"mean": 0.71, "std": 0.02, "interval": [0.66, 0.76]}
    base["confirmation"] = {
        "seeds": [11, 12],
        "winner": 2,
        "interval_method": "Student-t interval of the mean over seeds, 95%",
        "configurations": [
            {"rank": 1, "search_trial_id": "a", "search_value": 0.8, "validation": {**spread, "mean": 0.65}},
            {"rank": 2, "search_trial_id": "b", "search_value": 0.75, "validation": spread},
        ],
        "winner_test": {"per_seed": [{}, {}], "summary": {"test_criteria_macro_f1": spread}},
    }
    base["baseline"] = {
        "trial_id": "a",
        "validation_value": 0.61,
        "validation_gain": 0.1245678,
        "test_gain": {"test_criteria_macro_f1": {"gain": 0.05, "interval": [-0.01, 0.11]}},
    }
    return base


def test_confirmation_shows_the_search_score_beside_the_mean_over_seeds_and_the_gain_over_the_baseline(
    tmp_path,
) -> None:
    header, *rows = trials_table(confirmed_report())
    assert header.split()[:3] == ["trial", "stage", "state"]
    assert [row.lstrip("* ").split()[1] for row in rows] == ["baseline", "search", "confirm"]
    lines = answer_lines(confirmed_report(), tmp_path / "study_s1")
    start = lines.index("confirmation over seeds [11, 12] (Student-t interval of the mean over seeds, 95%):")
    table = lines[start + 1 : start + 4]
    assert table[1].split() == ["1", "1", "0.8000", "0.6500", "±", "0.0200", "[0.660,", "0.760]"]
    assert table[2].split() == ["*", "2", "2", "0.7500", "0.7100", "±", "0.0200", "[0.660,", "0.760]"]
    assert "the winner on test over its 2 seed(s): macro-F1 0.7100 ± 0.0200 [0.660, 0.760]" in lines
    gain = next(line for line in lines if line.startswith("gain over the baseline trial 1"))
    assert "val_criteria_macro_f1 +0.1246 on validation" in gain
    assert "macro-F1 +0.0500 [-0.010, +0.110]" in gain
    assert not any(line.startswith("confirmation") for line in answer_lines(report(), tmp_path / "study_s1"))


def test_a_baseline_that_beats_the_search_is_said_to_be_the_answer(tmp_path) -> None:
    beaten = {**report(), "best_trial_id": "a"}
    beaten["baseline"] = {
        "trial_id": "a",
        "validation_value": 0.61,
        "validation_gain": 0.0,
        "best_search_trial_id": "c",
        "search_gain": -0.0101,
    }
    lines = answer_lines(beaten, tmp_path / "study_s1")
    assert (
        "the baseline trial 1 (the configuration's own values) is the answer: the best search trial (3) scores "
        "val_criteria_macro_f1 -0.0101 against it"
    ) in lines


def test_a_stopped_study_says_why_and_how_to_go_on(tmp_path) -> None:
    stopped = {**report(), "config": {"hpo": {"timeout_s": 600.0, "patience_trials": 3}}}
    stopped["stopped"] = {"reason": "timeout", "why": "its time budget (hpo.timeout_s=600) was spent"}
    (line,) = [line for line in answer_lines(stopped, tmp_path / "study_s1") if "stopped early" in line]
    command = line.split("`")[1]
    args, extra = build_parser().parse_known_args(shlex.split(command)[1:])
    assert args.command == "resume" and args.study == "study_s1"
    assert "hpo.timeout_s=600" in [*args.overrides, *extra]
    stopped["stopped"] = {"reason": "plateau", "why": "..."}
    (line,) = [line for line in answer_lines(stopped, tmp_path / "study_s1") if "stopped early" in line]
    assert "hpo.patience_trials=6" in line
