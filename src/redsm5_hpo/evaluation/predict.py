"""Run a model over a split and turn its outputs into scored predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.data.evidence import evidence_chars
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.evaluation.decode import greedy_spans, to_char_spans
from redsm5_hpo.evaluation.metrics import criteria_metrics, evidence_metrics
from redsm5_hpo.evaluation.thresholds import as_vector, best_threshold, calibrate_criteria
from redsm5_hpo.faults import fault_point
from redsm5_hpo.models.losses import total_loss
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
def predict(model: CriteriaEvidenceModel, dataset: MultiLabelDataset, cfg: TrainConfig) -> Predictions:
    """Forward every example of ``dataset`` in order (no shuffling, no dropout), decode its evidence and
    map the outputs back to one row per post."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, collate_fn=dataset.collate)
    probs, spans, losses, sizes = [], [], [], []
    examples = iter(dataset.examples)
    for batch in loader:
        output = model(batch)
        losses.append(total_loss(model, output, batch, cfg.evidence_loss_weight, cfg.criteria_loss_weight).item())
        sizes.append(len(batch["labels"]))
        probs.append(torch.sigmoid(output.criteria_logits).numpy())
        for starts, ends, scores in model.evidence_head.candidates(output.evidence_logits, batch):
            spans.append(to_char_spans(greedy_spans(starts, ends, scores), next(examples).offsets))
        fault_point("mid_validation")
    model.train(was_training)
    post_probs, post_spans = dataset.to_posts(np.concatenate(probs), spans)
    labels = np.array([p.labels for p in dataset.posts], dtype=int)
    loss = float(np.average(losses, weights=sizes)) if sizes else 0.0
    return Predictions([p.post_id for p in dataset.posts], labels, post_probs, post_spans, loss)


def predicted_evidence_chars(
    dataset: MultiLabelDataset, spans: Sequence[Sequence[tuple[int, int, float]]], threshold: float
) -> list[set[int]]:
    """Per post, the non-space characters of the decoded spans scoring at least ``threshold``."""
    return [
        evidence_chars(post.text, [(start, end) for start, end, s in post_spans if s >= threshold])
        for post, post_spans in zip(dataset.posts, spans, strict=True)
    ]


def score(
    predictions: Predictions,
    dataset: MultiLabelDataset,
    split: str,
    thresholds: Sequence[float] | float = 0.5,
    evidence_threshold: float = 0.5,
) -> dict[str, float]:
    """All metrics of ``metric_keys(split)`` for these predictions."""
    metrics = criteria_metrics(predictions.labels, predictions.probs, thresholds)
    gold = [evidence_chars(p.text, p.evidence) for p in dataset.posts]
    metrics |= evidence_metrics(predicted_evidence_chars(dataset, predictions.evidence_spans, evidence_threshold), gold)
    metrics["loss"] = predictions.loss
    return {f"{split}_{k}": float(v) for k, v in metrics.items()}


def calibrate(predictions: Predictions, dataset: MultiLabelDataset) -> dict[str, object]:
    """Validation-calibrated thresholds: ``{"criteria": {SYMPTOM: t}, "evidence": t}``."""
    gold = [evidence_chars(p.text, p.evidence) for p in dataset.posts]

    def evidence_f1(t: float) -> float:
        predicted = predicted_evidence_chars(dataset, predictions.evidence_spans, t)
        return evidence_metrics(predicted, gold)["evidence_f1"]

    return {
        "criteria": calibrate_criteria(predictions.labels, predictions.probs),
        "evidence": best_threshold(evidence_f1),
    }


def score_calibrated(
    predictions: Predictions, dataset: MultiLabelDataset, split: str, thresholds: dict[str, object]
) -> dict[str, float]:
    """``score`` at the thresholds ``calibrate`` returned."""
    criteria = thresholds["criteria"]
    evidence = thresholds["evidence"]
    assert isinstance(criteria, dict) and isinstance(evidence, float)
    return score(predictions, dataset, split, as_vector(criteria), evidence)
