"""Per-criterion threshold calibration on validation."""

from __future__ import annotations

import numpy as np

from redsm5_hpo.evaluation.metrics import criteria_metrics
from redsm5_hpo.evaluation.thresholds import as_vector, calibrate_criteria, criterion_threshold
from redsm5_hpo.labels import SYMPTOMS

SPACE = {
    "train": {
        "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"train.optimizer": "sgd"}},
        "lr_head": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
    }
}


def test_threshold_moves_where_probabilities_are_shifted() -> None:
    # positives score 0.3-0.4, negatives 0.05-0.2: at 0.5 nothing is predicted, calibration finds the gap
    y = np.array([1] * 10 + [0] * 30)
    probs = np.concatenate([np.linspace(0.3, 0.4, 10), np.linspace(0.05, 0.2, 30)])
    threshold = criterion_threshold(y, probs)
    assert 0.2 < threshold <= 0.3
    labels = np.tile(y[:, None], (1, len(SYMPTOMS)))
    scores = np.tile(probs[:, None], (1, len(SYMPTOMS)))
    thresholds = calibrate_criteria(labels, scores)
    assert criteria_metrics(labels, scores)["criteria_macro_f1"] == 0.0
    assert criteria_metrics(labels, scores, as_vector(thresholds))["criteria_macro_f1"] == 1.0


def test_well_placed_or_uninformative_thresholds_stay_at_one_half() -> None:
    y = np.array([1, 1, 0, 0])
    assert criterion_threshold(y, np.array([0.9, 0.8, 0.1, 0.2])) == 0.5  # every grid point in the gap ties
    assert criterion_threshold(np.zeros(4, dtype=int), np.array([0.9, 0.8, 0.1, 0.2])) == 0.5  # no positive
