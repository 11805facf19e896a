import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

from redsm5_hpo.evaluation.metrics import (
    PAPER_CLASSES,
    average_precision,
    best_of,
    constant_baselines,
    criteria_metrics,
    evidence_metrics,
    f1_from_counts,
    metric_direction,
    metric_keys,
    oriented,
    paper_metrics,
    validation_metric_names,
    worst_value,
)
from redsm5_hpo.labels import SYMPTOMS


def test_f1_by_hand() -> None:
    assert f1_from_counts(2, 1, 1) == pytest.approx(2 / 3)
    assert f1_from_counts(0, 0, 0) == 0.0


def test_criteria_metrics_against_hand_computed_values() -> None:
    y = np.zeros((4, 9), dtype=int)
    p = np.zeros((4, 9))
    y[:, 0] = [1, 1, 0, 0]
    p[:, 0] = [0.9, 0.2, 0.8, 0.1]  # label 0: TP=1, FP=1, FN=1 -> F1 = 0.5
    y[:, 1] = [1, 0, 0, 0]
    p[:, 1] = [0.7, 0.1, 0.1, 0.1]  # label 1: perfect -> F1 = 1
    m = criteria_metrics(y, p)
    assert m["f1_DEPRESSED_MOOD"] == pytest.approx(0.5)
    assert m["f1_ANHEDONIA"] == pytest.approx(1.0)
    assert m["criteria_macro_f1"] == pytest.approx(1.5 / 9)
    assert m["criteria_micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # per-label thresholds change the decision
    thresholds = np.full(9, 0.5)
    thresholds[0] = 0.85
    assert criteria_metrics(y, p, thresholds)["f1_DEPRESSED_MOOD"] == pytest.approx(2 / 3)


def test_average_precision_by_hand() -> None:
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([0, 0]), np.array([0.1, 0.2])) == 0.0
    # tied scores are one threshold: the three tied posts (1 positive of 3) enter together at precision 2/4
    tied = average_precision(np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.5]))
    assert tied == pytest.approx(0.5 * 1 + 0.5 * 2 / 4)


@pytest.mark.parametrize("seed", range(20))
def test_criteria_metrics_equal_scikit_learn_on_random_labels_with_tied_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    y = (rng.random((n, 9)) < rng.uniform(0.05, 0.6, size=9)).astype(int)
    y[:, seed % 9] = 0  # a criterion without a positive: scikit-learn's AP is 0 there too
    probs = np.round(rng.random((n, 9)), 1)  # eleven distinct values: many tied scores
    thresholds = np.round(rng.uniform(0.1, 0.9, size=9), 2)
    m = criteria_metrics(y, probs, thresholds)
    decisions = (probs >= thresholds).astype(int)
    with pytest.warns(UserWarning, match="No positive class"):  # scikit-learn warns about that criterion
        reference_ap = average_precision_score(y, probs, average=None)
    for i, s in enumerate(SYMPTOMS):
        assert m[f"pr_auc_{s}"] == pytest.approx(reference_ap[i], abs=1e-12)
        assert m[f"f1_{s}"] == pytest.approx(f1_score(y[:, i], decisions[:, i], zero_division=0), abs=1e-12)
    assert m["criteria_macro_pr_auc"] == pytest.approx(np.mean(reference_ap), abs=1e-12)
    assert m["criteria_macro_f1"] == pytest.approx(f1_score(y, decisions, average="macro", zero_division=0))
    assert m["criteria_micro_f1"] == pytest.approx(f1_score(y, decisions, average="micro", zero_division=0))


def test_paper_metrics_by_hand() -> None:
    y = np.zeros((4, 9), dtype=int)
    y[0, 0] = 1  # DEPRESSED_MOOD
    y[1, [0, 1]] = 1  # DEPRESSED_MOOD + ANHEDONIA
    # post 2 and 3: no symptom -> NO_SYMPTOMS
    probs = np.full((4, 9), 0.1)
    probs[0, 0] = 0.51
    probs[1, 0] = 0.9  # ANHEDONIA missed
    probs[2, 4] = 0.7  # a false PSYCHOMOTOR: no NO_SYMPTOMS for post 2
    m = paper_metrics(y, probs)
    # DEPRESSED_MOOD: TP 2; ANHEDONIA: FN 1; PSYCHOMOTOR: FP 1; NO_SYMPTOMS: TP 1 (post 3), FN 1 (post 2)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert m["f1_per_class"]["DEPRESSED_MOOD"] == 1.0 and m["f1_per_class"]["ANHEDONIA"] == 0.0
    assert m["f1_per_class"]["NO_SYMPTOMS"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3) / 10)  # ten classes, empty ones count as 0
    assert m["weighted_f1"] == pytest.approx((2 * 1 + 1 * 0 + 2 * 2 / 3) / 5)
    assert m["exact_match_accuracy"] == pytest.approx(2 / 4)
    assert m["support"] == {**dict.fromkeys(PAPER_CLASSES, 0), "DEPRESSED_MOOD": 2, "ANHEDONIA": 1, "NO_SYMPTOMS": 2}
    probs[0, 0] = 0.5  # not above the threshold: post 0 now predicts NO_SYMPTOMS, as the notebooks' `> 0.5`
    assert paper_metrics(y, probs)["f1_per_class"]["DEPRESSED_MOOD"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_paper_metrics_equal_scikit_learn_on_the_ten_class_matrix(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((40, 9)) < 0.15).astype(int)
    probs = np.round(rng.random((40, 9)), 1)
    gold = np.hstack([y, (y.sum(axis=1, keepdims=True) == 0)]).astype(int)
    decided = (probs > 0.5).astype(int)
    predicted = np.hstack([decided, (decided.sum(axis=1, keepdims=True) == 0)]).astype(int)
    m = paper_metrics(y, probs)
    for average in ("micro", "macro", "weighted"):
        assert m[f"{average}_f1"] == pytest.approx(f1_score(gold, predicted, average=average, zero_division=0))
    assert m["exact_match_accuracy"] == pytest.approx(accuracy_score(gold, predicted))
    assert m["posts"] == 40 and m["threshold"] == 0.5


def test_a_loss_is_minimized_every_other_metric_maximized() -> None:
    assert metric_direction("val_loss") == "minimize"
    assert {metric_direction(k) for k in validation_metric_names() - {"val_loss"}} == {"maximize"}
    assert best_of([0.3, 0.1, 0.2], "minimize") == 0.1 and best_of([0.3, 0.1, 0.2], "maximize") == 0.3
    assert best_of([], "minimize") is None
    assert oriented(0.1, "minimize") > oriented(0.2, "minimize")
    for direction in ("minimize", "maximize"):
        assert oriented(0.0, direction) > oriented(worst_value(direction), direction)


def test_evidence_metrics_are_character_level_micro() -> None:
    m = evidence_metrics([{1, 2, 3}, set()], [{2, 3, 4}, {9}])
    assert m["evidence_precision"] == pytest.approx(2 / 3)
    assert m["evidence_recall"] == pytest.approx(2 / 4)
    assert m["evidence_f1"] == pytest.approx(2 * 2 / (4 + 1 + 2))


def test_constant_baselines() -> None:
    y_test = np.zeros((4, 9), dtype=int)
    y_test[0, 0] = 1
    b = constant_baselines(np.zeros((10, 9)), y_test)
    assert b["majority_macro_f1"] == 0.0
    assert b["all_positive_macro_f1"] == pytest.approx(f1_from_counts(1, 3, 0) / 9)


def test_metric_names_cover_every_symptom_and_evidence_level() -> None:
    assert {f"val_f1_{s}" for s in SYMPTOMS} | {f"val_pr_auc_{s}" for s in SYMPTOMS} <= validation_metric_names()
    assert "test_criteria_macro_f1" in metric_keys("test")
    levels = {f"val_evidence_{lvl}_{m}" for lvl in ("char", "sentence", "span") for m in ("precision", "recall", "f1")}
    assert levels <= validation_metric_names()
