"""Decision thresholds calibrated on the validation split: per criterion, and the minimum score of a
decoded evidence span.

Each threshold maximizes F1 on validation over a fixed grid; ties go to the threshold nearest 0.5, and a
criterion without a positive validation post keeps 0.5 (there is nothing to calibrate on). The study's
test evaluation then uses these thresholds, never ones fitted on test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from redsm5_hpo.evaluation.metrics import f1_from_counts
from redsm5_hpo.labels import SYMPTOMS

GRID = tuple(round(float(t), 3) for t in np.linspace(0.05, 0.95, 37))
DEFAULT = 0.5


def best_threshold(scores: Callable[[float], float], grid: Sequence[float] = GRID) -> float:
    """The grid value with the highest score; ties -> nearest to 0.5."""
    return max(grid, key=lambda t: (round(scores(t), 12), -abs(t - DEFAULT)))


def criterion_threshold(y_true: np.ndarray, probs: np.ndarray, grid: Sequence[float] = GRID) -> float:
    y = np.asarray(y_true, dtype=int)
    if y.sum() == 0:
        return DEFAULT

    def f1(t: float) -> float:
        predicted = (np.asarray(probs) >= t).astype(int)
        return f1_from_counts((predicted & y).sum(), (predicted & (1 - y)).sum(), ((1 - predicted) & y).sum())

    return best_threshold(f1, grid)


def calibrate_criteria(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """``{SYMPTOM: threshold}`` from validation labels and probabilities, both (N, 9)."""
    return {s: criterion_threshold(y_true[:, i], probs[:, i]) for i, s in enumerate(SYMPTOMS)}


def as_vector(thresholds: dict[str, float]) -> list[float]:
    return [float(thresholds.get(s, DEFAULT)) for s in SYMPTOMS]
