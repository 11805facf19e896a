"""Run a model over a split and turn its outputs into scored predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from redsm5_hpo.config.schema import EVIDENCE_LEVELS, TrainConfig
from redsm5_hpo.data.batching import length_sorted_batches
from redsm5_hpo.data.evidence import evidence_chars
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.devices import Runtime
from redsm5_hpo.evaluation.decode import greedy_spans, merge_windows, to_char_spans
from redsm5_hpo.evaluation.evidence_scoring import (
    GoldEvidence,
    evidence_scores,
    level_counts,
    prepare_gold,
    select_level,
)
from redsm5_hpo.evaluation.intervals import Interval, percentile_intervals, resample_counts, resampled_metrics
from redsm5_hpo.evaluation.metrics import criteria_metrics
from redsm5_hpo.evaluation.thresholds import as_vector, best_threshold, calibrate_criteria
from redsm5_hpo.faults import fault_point
from redsm5_hpo.models.model import CriteriaEvidenceModel


@dataclass
class Predictions:
    post_ids: list[str]
    labels: np.ndarray
    """(N, 9) gold labels."""
    probs: np.ndarray
    """(N, 9) predicted probabilities."""
    evidence_spans: list[list[tuple[int, int, float]]]
    """Per post, the evidence head's decoded (start char, end char, score) spans, best first; an
    evidence threshold keeps those scoring at least it."""
    loss: float


@torch.no_grad()
def predict(
    model: CriteriaEvidenceModel,
    dataset: MultiLabelDataset,
    cfg: TrainConfig,
    runtime: Runtime,
    progress: bool = False,
) -> Predictions:
    """Forward every unit of ``dataset`` on ``runtime``'s device (no dropout) in batches of
    ``eval_batch_size`` sorted by length, decode its evidence (each window's, merged in the post's
    characters) and map the outputs back to one row per post, in the dataset's order. Each batch's outputs
    come back to the CPU once; the loss stays on the device until the end. ``progress``: a bar over the
    batches (on a terminal only)."""
    was_training = model.training
    model.eval()
    batches = length_sorted_batches(dataset.lengths, cfg.eval_batch_size or cfg.batch_size, dataset.window_counts)
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate, pin_memory=runtime.pin_memory)
    probs: list[np.ndarray] = [np.empty(0)] * len(dataset)
    spans: list[list[tuple[int, int, float]]] = [[] for _ in range(len(dataset))]
    loss_sum = torch.zeros((), device=runtime.device)
    bar = tqdm(total=len(batches), desc="predict", unit="batch", leave=False, disable=None if progress else True)
    for indices, cpu_batch in zip(batches, loader, strict=True):
        bar.update()
        batch = runtime.to_device(cpu_batch)
        with runtime.compute():
            output = model(batch)
            loss = model.loss(output, batch, cfg.evidence_loss_weight, cfg.criteria_loss_weight)
        loss_sum += loss.float() * len(indices)
        batch_probs = torch.sigmoid(output.criteria_logits.float()).cpu().numpy()
        candidates = iter(model.evidence_head.candidates(output.evidence_logits.float(), batch))
        for row, index in enumerate(indices):
            probs[index] = batch_probs[row]
            per_window = [to_char_spans(greedy_spans(*next(candidates)), window.offsets) for window in dataset[index]]
            spans[index] = per_window[0] if len(per_window) == 1 else merge_windows(per_window)
        fault_point("mid_validation")
    bar.close()
    model.train(was_training)
    post_probs, post_spans = dataset.to_posts(np.stack(probs) if probs else np.empty((0, 9)), spans)
    labels = np.array([p.labels for p in dataset.posts], dtype=int)
    mean_loss = float(loss_sum) / len(dataset) if len(dataset) else 0.0
    return Predictions([p.post_id for p in dataset.posts], labels, post_probs, post_spans, mean_loss)


def predicted_evidence_chars(
    dataset: MultiLabelDataset, spans: Sequence[Sequence[tuple[int, int, float]]], threshold: float
) -> list[set[int]]:
    """Per post, the non-space characters of the decoded spans scoring at least ``threshold``."""
    return [
        evidence_chars(post.text, [(start, end) for start, end, s in post_spans if s >= threshold])
        for post, post_spans in zip(dataset.posts, spans, strict=True)
    ]


def gold_evidence(dataset: MultiLabelDataset) -> list[GoldEvidence]:
    return [prepare_gold(p.text, p.evidence) for p in dataset.posts]


def score(
    predictions: Predictions,
    dataset: MultiLabelDataset,
    split: str,
    thresholds: Sequence[float] | float = 0.5,
    evidence_threshold: float = 0.5,
    evidence_level: str = "char",
) -> dict[str, float]:
    """All metrics of ``metric_keys(split)`` for these predictions; ``evidence_{precision,recall,f1}``
    are those of ``evidence_level``."""
    metrics = criteria_metrics(predictions.labels, predictions.probs, thresholds)
    predicted = predicted_evidence_chars(dataset, predictions.evidence_spans, evidence_threshold)
    evidence = evidence_scores(gold_evidence(dataset), predicted)
    metrics |= evidence | select_level(evidence, evidence_level)
    metrics["loss"] = predictions.loss
    return {f"{split}_{k}": float(v) for k, v in metrics.items()}


def calibrate(predictions: Predictions, dataset: MultiLabelDataset, evidence_level: str = "char") -> dict[str, object]:
    """Validation-calibrated thresholds: ``{"criteria": {SYMPTOM: t}, "evidence": t}``; the evidence
    threshold maximizes the F1 of ``evidence_level``."""
    gold = gold_evidence(dataset)

    def evidence_f1(t: float) -> float:
        predicted = predicted_evidence_chars(dataset, predictions.evidence_spans, t)
        return evidence_scores(gold, predicted)[f"evidence_{evidence_level}_f1"]

    return {
        "criteria": calibrate_criteria(predictions.labels, predictions.probs),
        "evidence": best_threshold(evidence_f1),
    }


def score_calibrated(
    predictions: Predictions,
    dataset: MultiLabelDataset,
    split: str,
    thresholds: dict[str, object],
    evidence_level: str = "char",
) -> dict[str, float]:
    """``score`` at the thresholds ``calibrate`` returned."""
    criteria = thresholds["criteria"]
    evidence = thresholds["evidence"]
    assert isinstance(criteria, dict) and isinstance(evidence, float)
    return score(predictions, dataset, split, as_vector(criteria), evidence, evidence_level)


def bootstrap_intervals(
    predictions: Predictions,
    dataset: MultiLabelDataset,
    split: str,
    thresholds: dict[str, object] | None,
    evidence_level: str,
    samples: int,
    confidence: float,
    seed: int,
) -> dict[str, Interval]:
    """The ``confidence`` interval of every metric ``score`` gives (at ``thresholds``, else 0.5) and of the
    paper-protocol scalars (``<split>_paper_*``), from ``samples`` resamples of the posts (``intervals``)."""
    criteria = as_vector(thresholds["criteria"]) if thresholds else 0.5  # type: ignore[arg-type]
    evidence_cut = float(thresholds["evidence"]) if thresholds else 0.5  # type: ignore[arg-type]
    predicted = predicted_evidence_chars(dataset, predictions.evidence_spans, evidence_cut)
    per_post = [level_counts(gold, chars) for gold, chars in zip(gold_evidence(dataset), predicted, strict=True)]
    counts = {level: np.array([post[level] for post in per_post]).reshape(-1, 3) for level in EVIDENCE_LEVELS}
    weights = resample_counts(len(predictions.labels), samples, seed)
    resampled = resampled_metrics(predictions.labels, predictions.probs, criteria, counts, evidence_level, weights)
    return {f"{split}_{name}": interval for name, interval in percentile_intervals(resampled, confidence).items()}
