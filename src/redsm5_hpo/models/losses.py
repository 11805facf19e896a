"""Training losses: BCE for criteria, masked token BCE for evidence."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from redsm5_hpo.models.model import ModelOutput


def criteria_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits, labels: (B, 9) -> scalar mean BCE."""
    return F.binary_cross_entropy_with_logits(logits, labels)


def evidence_loss(logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """logits, labels, attention_mask: (B, T) -> BCE averaged over real tokens only."""
    per_token = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    mask = attention_mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def total_loss(output: ModelOutput, batch: dict[str, torch.Tensor], evidence_weight: float) -> torch.Tensor:
    return criteria_loss(output.criteria_logits, batch["labels"]) + evidence_weight * evidence_loss(
        output.evidence_logits, batch["evidence_labels"], batch["attention_mask"]
    )
