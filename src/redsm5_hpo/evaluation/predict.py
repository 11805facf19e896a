"""Run a model over a split and turn its outputs into scored predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from redsm5_hpo.data.evidence import evidence_chars
from redsm5_hpo.data.formats import MultiLabelDataset
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
    evidence_token_probs: list[np.ndarray]
    """Per post, (T_i,) evidence probability of each kept token."""
    loss: float


@torch.no_grad()
def predict(
    model: CriteriaEvidenceModel, dataset: MultiLabelDataset, batch_size: int, evidence_weight: float
) -> Predictions:
    """Forward every post of ``dataset`` in order (no shuffling, no dropout)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate)
    probs, token_probs, losses, sizes = [], [], [], []
    for batch in loader:
        output = model(batch["input_ids"], batch["attention_mask"])
        losses.append(total_loss(output, batch, evidence_weight).item())
        sizes.append(len(batch["labels"]))
        probs.append(torch.sigmoid(output.criteria_logits).numpy())
        evidence = torch.sigmoid(output.evidence_logits).numpy()  # (B, T)
        for row, length in enumerate(batch["attention_mask"].sum(dim=1).tolist()):
            token_probs.append(evidence[row, :length])
        fault_point("mid_validation")
    model.train(was_training)
    labels = np.array([e.labels for e in dataset.examples], dtype=int)
    loss = float(np.average(losses, weights=sizes)) if sizes else 0.0
    return Predictions([e.post_id for e in dataset.examples], labels, np.concatenate(probs), token_probs, loss)


def predicted_evidence_chars(
    dataset: MultiLabelDataset, token_probs: Sequence[np.ndarray], threshold: float
) -> list[set[int]]:
    """Per post, the non-space characters of tokens whose evidence probability passes ``threshold``."""
    result = []
    for example, post, probs in zip(dataset.examples, dataset.posts, token_probs, strict=True):
        spans = [example.offsets[i] for i in np.flatnonzero(probs >= threshold)]
        result.append(evidence_chars(post.text, spans))
    return result


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
    metrics |= evidence_metrics(
        predicted_evidence_chars(dataset, predictions.evidence_token_probs, evidence_threshold), gold
    )
    metrics["loss"] = predictions.loss
    return {f"{split}_{k}": float(v) for k, v in metrics.items()}


def calibrate(predictions: Predictions, dataset: MultiLabelDataset) -> dict[str, object]:
    """Validation-calibrated thresholds: ``{"criteria": {SYMPTOM: t}, "evidence": t}``."""
    gold = [evidence_chars(p.text, p.evidence) for p in dataset.posts]

    def evidence_f1(t: float) -> float:
        predicted = predicted_evidence_chars(dataset, predictions.evidence_token_probs, t)
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
