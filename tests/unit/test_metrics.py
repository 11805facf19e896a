import numpy as np
import pytest

from redsm5_hpo.evaluation.metrics import (
    average_precision,
    constant_baselines,
    criteria_metrics,
    evidence_metrics,
    f1_from_counts,
    metric_keys,
    validation_metric_names,
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


def test_metric_names_cover_every_symptom() -> None:
    assert {f"val_f1_{s}" for s in SYMPTOMS} <= validation_metric_names()
    assert "test_criteria_macro_f1" in metric_keys("test")
