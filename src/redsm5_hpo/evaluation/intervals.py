"""Bootstrap confidence intervals for the test metrics, posts resampled as units.

One resample draws the test posts with replacement (``numpy``'s ``Generator.integers``, the draw
``scipy.stats.bootstrap`` makes for the same seed); every metric is computed on it from per-post counts,
so a post's criteria, its evidence and its paper-protocol decisions move together. The interval is the
percentile interval of the resampled values (``scipy.stats.bootstrap``'s ``method="percentile"``). Each
resampled value equals the reference metric (``metrics.criteria_metrics``, ``evidence_scoring``,
``metrics.paper_metrics``) on the resampled posts: F1s from summed counts, PR-AUC as scikit-learn's
average precision (tied scores one threshold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from redsm5_hpo.config.schema import EVIDENCE_LEVELS
from redsm5_hpo.evaluation.metrics import PAPER_THRESHOLD, with_no_symptoms
from redsm5_hpo.labels import SYMPTOMS

Interval = tuple[float, float]


def resample_counts(n_posts: int, samples: int, seed: int) -> np.ndarray:
    """(samples, n_posts): how often each post is drawn in each resample."""
    draws = np.random.default_rng(seed).integers(0, n_posts, (samples, n_posts))
    counts = np.zeros((samples, n_posts))
    np.add.at(counts, (np.arange(samples)[:, None], draws), 1)
    return counts


def f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Elementwise F1 from counts; 0 where there is nothing to count (``zero_division=0``)."""
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0)


def confusion(weights: np.ndarray, decided: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, ...]:
    """(true positives, false positives, false negatives) of each column on each resample: (samples, columns)."""
    return weights @ (decided & gold), weights @ (decided & (1 - gold)), weights @ ((1 - decided) & gold)


def ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    return np.divide(top, bottom, out=np.zeros_like(bottom, dtype=float), where=bottom > 0)


def average_precisions(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(samples,): scikit-learn's average precision of one criterion on each weighted resample: thresholds
    at the distinct scores, highest first, AP = sum of (recall step) x precision; 0 without positives."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order].astype(float)
    ends = np.flatnonzero(np.r_[np.diff(sorted_scores) != 0, True])  # the last post of each tied group
    weighted = weights[:, order]
    true_positives = np.cumsum(weighted * sorted_labels, axis=1)[:, ends]
    predicted = np.cumsum(weighted, axis=1)[:, ends]
    positives = true_positives[:, -1:]
    recall = ratio(true_positives, np.broadcast_to(positives, true_positives.shape))
    precision = ratio(true_positives, predicted)
    steps = np.diff(np.c_[np.zeros(len(weights)), recall], axis=1)
    return np.where(positives[:, 0] > 0, (steps * precision).sum(axis=1), 0.0)


def resampled_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    thresholds: Sequence[float] | float,
    evidence_counts: Mapping[str, np.ndarray],
    evidence_level: str,
    weights: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every test metric on each resample (``weights``: ``resample_counts``), by the names ``score`` uses
    without the split prefix, plus ``paper_*``. ``evidence_counts[level]``: (posts, 3) true positives, false
    positives and false negatives of each post."""
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=float)
    decided = (probs >= np.asarray(thresholds)).astype(int)
    tp, fp, fn = confusion(weights, decided, labels)
    per_label = f1(tp, fp, fn)
    out: dict[str, np.ndarray] = {f"f1_{s}": per_label[:, i] for i, s in enumerate(SYMPTOMS)}
    pr_auc = np.stack([average_precisions(labels[:, i], probs[:, i], weights) for i in range(len(SYMPTOMS))], axis=1)
    out |= {f"pr_auc_{s}": pr_auc[:, i] for i, s in enumerate(SYMPTOMS)}
    out["criteria_macro_f1"] = per_label.mean(axis=1)
    out["criteria_micro_f1"] = f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))
    out["criteria_macro_pr_auc"] = pr_auc.mean(axis=1)
    for level in EVIDENCE_LEVELS:
        level_tp, level_fp, level_fn = (weights @ np.asarray(evidence_counts[level], dtype=float)).T
        precision, recall = ratio(level_tp, level_tp + level_fp), ratio(level_tp, level_tp + level_fn)
        out |= {
            f"evidence_{level}_precision": precision,
            f"evidence_{level}_recall": recall,
            f"evidence_{level}_f1": f1(level_tp, level_fp, level_fn),
        }
    for name in ("precision", "recall", "f1"):
        out[f"evidence_{name}"] = out[f"evidence_{evidence_level}_{name}"]
    return out | _paper(labels, probs, weights)


def _paper(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """``metrics.paper_metrics``' scalars on each resample: ten classes, a criterion above 0.5."""
    gold, predicted = with_no_symptoms(labels), with_no_symptoms(probs > PAPER_THRESHOLD)
    tp, fp, fn = confusion(weights, predicted, gold)
    per_class = f1(tp, fp, fn)
    support = weights @ gold
    exact = (predicted == gold).all(axis=1).astype(float)
    return {
        "paper_micro_f1": f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1)),
        "paper_macro_f1": per_class.mean(axis=1),
        "paper_weighted_f1": ratio((per_class * support).sum(axis=1), support.sum(axis=1)),
        "paper_exact_match_accuracy": (weights @ exact) / len(labels),
    }


def percentile_intervals(resampled: Mapping[str, np.ndarray], confidence: float) -> dict[str, Interval]:
    """The percentile interval of each metric's resampled values at ``confidence``."""
    tail = (1 - confidence) / 2 * 100
    return {
        name: (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
        for name, values in resampled.items()
    }
