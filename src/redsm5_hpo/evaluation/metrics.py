"""Pure metric functions over arrays: no torch, no I/O.

Names: ``<split>_criteria_macro_f1``, ``<split>_criteria_micro_f1``, ``<split>_criteria_macro_pr_auc``,
``<split>_f1_<SYMPTOM>``, ``<split>_pr_auc_<SYMPTOM>``, ``<split>_evidence_<level>_{precision,recall,f1}``
for each evidence level (``evidence_scoring.LEVELS``), ``<split>_evidence_{precision,recall,f1}`` (the
level ``evaluation.evidence_metric`` picks) and ``<split>_loss``.

Every metric has a direction: a ``*_loss`` is minimized, everything else maximized. Code that compares
metric values (best checkpoint, best trial, pruning) goes through ``metric_direction`` and ``oriented``.
Ranking metrics are scikit-learn's own functions, so they equal the reference by construction
(imported where they are called: configuration checks read the names here, and the command line stays
quick to answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

from redsm5_hpo.config.schema import EVIDENCE_LEVELS
from redsm5_hpo.labels import SYMPTOMS

Direction = Literal["maximize", "minimize"]
NO_SYMPTOMS = "NO_SYMPTOMS"
PAPER_CLASSES = (*SYMPTOMS, NO_SYMPTOMS)
"""The published baselines' ten classes: the nine criteria, and NO_SYMPTOMS for a post with none."""
PAPER_THRESHOLD = 0.5


def metric_keys(split: str) -> list[str]:
    """Every metric name an evaluation of ``split`` produces."""
    base = ["loss", "criteria_macro_f1", "criteria_micro_f1", "criteria_macro_pr_auc"]
    base += [f"f1_{s}" for s in SYMPTOMS] + [f"pr_auc_{s}" for s in SYMPTOMS]
    base += ["evidence_precision", "evidence_recall", "evidence_f1"]
    base += [f"evidence_{level}_{m}" for level in EVIDENCE_LEVELS for m in ("precision", "recall", "f1")]
    return [f"{split}_{name}" for name in base]


def validation_metric_names() -> set[str]:
    """Metrics that can be optimized: what every epoch's validation logs."""
    return set(metric_keys("val"))


def metric_direction(name: str) -> Direction:
    """``minimize`` for a loss (``*_loss``), ``maximize`` for every other metric."""
    return "minimize" if name == "loss" or name.endswith("_loss") else "maximize"


def oriented(value: float, direction: Direction) -> float:
    """``value`` turned so that higher is better: what every comparison of metric values uses."""
    return value if direction == "maximize" else -value


def best_of(values: Iterable[float], direction: Direction) -> float | None:
    """The best of ``values`` in ``direction``; None when there is none."""
    return max(values, key=lambda v: oriented(v, direction), default=None)


def worst_value(direction: Direction) -> float:
    """The value every real one beats: -inf when maximizing, +inf when minimizing."""
    return -np.inf if direction == "maximize" else np.inf


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """F1 = 2TP / (2TP + FP + FN); 0 when there is nothing to score."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def precision_recall_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, f1_from_counts(tp, fp, fn)


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's ``average_precision_score`` (tied scores form one threshold); 0 with no positives,
    as scikit-learn returns (without its warning)."""
    y = np.asarray(y_true, dtype=int)
    if not y.any():
        return 0.0
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, np.asarray(scores, dtype=float)))


def criteria_metrics(
    y_true: np.ndarray, probs: np.ndarray, thresholds: Sequence[float] | float = 0.5
) -> dict[str, float]:
    """Per-criterion F1 and PR-AUC, macro/micro F1 and macro PR-AUC. ``y_true``, ``probs``: (N, 9)."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=float)
    predicted = (probs >= np.asarray(thresholds)).astype(int)
    tp = (predicted & y_true).sum(axis=0)
    fp = (predicted & (1 - y_true)).sum(axis=0)
    fn = ((1 - predicted) & y_true).sum(axis=0)
    per_label = [f1_from_counts(tp[i], fp[i], fn[i]) for i in range(len(SYMPTOMS))]
    pr_auc = [average_precision(y_true[:, i], probs[:, i]) for i in range(len(SYMPTOMS))]
    result = {f"f1_{s}": per_label[i] for i, s in enumerate(SYMPTOMS)}
    result |= {f"pr_auc_{s}": pr_auc[i] for i, s in enumerate(SYMPTOMS)}
    result["criteria_macro_f1"] = float(np.mean(per_label))
    result["criteria_micro_f1"] = f1_from_counts(tp.sum(), fp.sum(), fn.sum())
    result["criteria_macro_pr_auc"] = float(np.mean(pr_auc))
    return result


def with_no_symptoms(decisions: np.ndarray) -> np.ndarray:
    """(N, 9) 0/1 -> (N, 10): NO_SYMPTOMS is 1 exactly when no criterion is."""
    decisions = np.asarray(decisions, dtype=int)
    return np.hstack([decisions, (decisions.sum(axis=1, keepdims=True) == 0).astype(int)])


def paper_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, object]:
    """The published baselines' protocol: ten classes (the nine criteria plus NO_SYMPTOMS, predicted when
    no criterion is), a criterion predicted when its probability is above 0.5 (``> 0.5``, as their
    notebooks decide), micro / macro / weighted F1 and exact-match accuracy (every one of the ten decisions
    right), computed by scikit-learn as theirs are (``zero_division=0``)."""
    from sklearn.metrics import accuracy_score, f1_score

    gold = with_no_symptoms(y_true)
    predicted = with_no_symptoms(np.asarray(probs) > PAPER_THRESHOLD)
    per_class = f1_score(gold, predicted, average=None, zero_division=0)
    return {
        "micro_f1": float(f1_score(gold, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(gold, predicted, average="weighted", zero_division=0)),
        "exact_match_accuracy": float(accuracy_score(gold, predicted)),
        "f1_per_class": {c: float(f) for c, f in zip(PAPER_CLASSES, per_class, strict=True)},
        "support": {c: int(n) for c, n in zip(PAPER_CLASSES, gold.sum(axis=0), strict=True)},
        "threshold": PAPER_THRESHOLD,
        "posts": len(gold),
    }


def evidence_metrics(predicted: Iterable[set[int]], gold: Iterable[set[int]]) -> dict[str, float]:
    """Character-level micro precision/recall/F1 over posts: sets of evidence character indices."""
    tp = fp = fn = 0
    for pred, true in zip(predicted, gold, strict=True):
        tp += len(pred & true)
        fp += len(pred - true)
        fn += len(true - pred)
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return {"evidence_precision": precision, "evidence_recall": recall, "evidence_f1": f1}


def constant_baselines(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """Test macro-F1 of a majority-class predictor (per label, from train) and of all-positive."""
    majority = (np.asarray(y_train).mean(axis=0) > 0.5).astype(float)
    n = len(y_test)
    return {
        "majority_macro_f1": criteria_metrics(y_test, np.tile(majority, (n, 1)))["criteria_macro_f1"],
        "all_positive_macro_f1": criteria_metrics(y_test, np.ones((n, len(SYMPTOMS))))["criteria_macro_f1"],
    }
