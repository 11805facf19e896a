"""Pure metric functions over arrays: no torch, no I/O.

Names: ``<split>_criteria_macro_f1``, ``<split>_criteria_micro_f1``, ``<split>_criteria_macro_pr_auc``,
``<split>_f1_<SYMPTOM>``, ``<split>_evidence_{precision,recall,f1}`` and ``<split>_loss``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from redsm5_hpo.labels import SYMPTOMS


def metric_keys(split: str) -> list[str]:
    """Every metric name an evaluation of ``split`` produces."""
    base = ["loss", "criteria_macro_f1", "criteria_micro_f1", "criteria_macro_pr_auc"]
    base += [f"f1_{s}" for s in SYMPTOMS] + ["evidence_precision", "evidence_recall", "evidence_f1"]
    return [f"{split}_{name}" for name in base]


def validation_metric_names() -> set[str]:
    """Metrics that can be optimized: what every epoch's validation logs."""
    return set(metric_keys("val"))


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """F1 = 2TP / (2TP + FP + FN); 0 when there is nothing to score."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def precision_recall_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, f1_from_counts(tp, fp, fn)


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise, as average precision); 0 with no positives."""
    positives = int(y_true.sum())
    if positives == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = y_true[order]
    precision_at_k = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at_k * hits).sum() / positives)


def criteria_metrics(
    y_true: np.ndarray, probs: np.ndarray, thresholds: Sequence[float] | float = 0.5
) -> dict[str, float]:
    """Per-criterion F1, macro/micro F1 and macro PR-AUC. ``y_true``, ``probs``: (N, 9)."""
    y_true = np.asarray(y_true, dtype=int)
    predicted = (np.asarray(probs) >= np.asarray(thresholds)).astype(int)
    tp = (predicted & y_true).sum(axis=0)
    fp = (predicted & (1 - y_true)).sum(axis=0)
    fn = ((1 - predicted) & y_true).sum(axis=0)
    per_label = [f1_from_counts(tp[i], fp[i], fn[i]) for i in range(len(SYMPTOMS))]
    result = {f"f1_{s}": per_label[i] for i, s in enumerate(SYMPTOMS)}
    result["criteria_macro_f1"] = float(np.mean(per_label))
    result["criteria_micro_f1"] = f1_from_counts(tp.sum(), fp.sum(), fn.sum())
    result["criteria_macro_pr_auc"] = float(
        np.mean([average_precision(y_true[:, i], probs[:, i]) for i in range(len(SYMPTOMS))])
    )
    return result


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
