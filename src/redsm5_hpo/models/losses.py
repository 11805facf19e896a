"""Training losses: the criteria loss family, and the weighted sum with the evidence head's loss.

Everything works from logits through ``logsigmoid``, so no probability is ever 0 inside a log and
extreme logits stay finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from redsm5_hpo.config.schema import CRITERIA_LOSSES, TrainConfig


def positive_weights(labels: np.ndarray | Sequence[Sequence[int]]) -> torch.Tensor:
    """Per criterion, negatives / positives in the train split's (N, C) labels (1.0 for a criterion without
    positives): the ``pos_weight`` of class-weighted BCE."""
    y = np.asarray(labels, dtype=float).reshape(-1, np.shape(labels)[-1])
    positives = y.sum(axis=0)
    weights = np.where(positives > 0, (len(y) - positives) / np.maximum(positives, 1), 1.0)
    return torch.tensor(weights, dtype=torch.float)


def smooth(targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Label smoothing towards 1/2: 1 -> 1 - eps/2, 0 -> eps/2."""
    return targets * (1 - epsilon) + epsilon / 2


def bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Element-wise BCE (torch's stable form); ``pos_weight`` (C,) or (B, 1) scales the positive term."""
    return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")


def focal(logits: torch.Tensor, targets: torch.Tensor, gamma: torch.Tensor | float) -> torch.Tensor:
    """Element-wise focal loss, BCE * (1 - p_t) ** gamma, with (1 - p_t) taken in log space:
    log(y * (1 - p) + (1 - y) * p)."""
    gamma = torch.as_tensor(gamma, dtype=logits.dtype, device=logits.device)
    log_miss = torch.logaddexp(
        torch.log(targets.clamp(min=0)) + F.logsigmoid(-logits),
        torch.log((1 - targets).clamp(min=0)) + F.logsigmoid(logits),
    )
    return torch.exp(gamma * log_miss) * bce(logits, targets)


@dataclass(frozen=True)
class LossSettings:
    """The criteria loss's own settings (``train.criteria_loss`` and the keys beside it)."""

    kind: str = "bce"
    gamma: float = 2.0
    alpha: float = 0.5
    hybrid_bce: str = "weighted_bce"
    hybrid_focal: str = "focal"
    label_smoothing: float = 0.0
    gamma_penalty: float = 0.1

    @classmethod
    def of(cls, cfg: TrainConfig) -> LossSettings:
        return cls(
            cfg.criteria_loss,
            gamma=cfg.focal_gamma,
            alpha=cfg.hybrid_alpha,
            hybrid_bce=cfg.hybrid_bce,
            hybrid_focal=cfg.hybrid_focal,
            label_smoothing=cfg.label_smoothing,
            gamma_penalty=cfg.gamma_penalty,
        )


class CriteriaLoss(nn.Module):
    """``bce``, ``weighted_bce`` (``pos_weight`` from the train split), ``focal`` (fixed gamma),
    ``adaptive_focal`` (one learned gamma per criterion, softplus-positive, pulled towards ``gamma`` by
    ``gamma_penalty`` * (learned - gamma)^2 so it cannot run off) or ``hybrid``:
    ``alpha`` * the ``hybrid_bce`` variant + (1 - ``alpha``) * the ``hybrid_focal`` variant. Label
    smoothing applies to every kind."""

    pos_weight: torch.Tensor

    def __init__(
        self, settings: LossSettings = LossSettings(), pos_weight: torch.Tensor | None = None, n_labels: int = 9
    ):
        super().__init__()
        kind, gamma, hybrid_focal = settings.kind, settings.gamma, settings.hybrid_focal
        if kind not in CRITERIA_LOSSES:
            raise ValueError(f"criteria loss {kind!r}: one of {', '.join(CRITERIA_LOSSES)}")
        self.kind, self.gamma, self.alpha = kind, gamma, settings.alpha
        self.hybrid_bce, self.hybrid_focal = settings.hybrid_bce, hybrid_focal
        self.label_smoothing, self.gamma_penalty = settings.label_smoothing, settings.gamma_penalty
        self.register_buffer(
            "pos_weight", pos_weight if pos_weight is not None else torch.ones(n_labels), persistent=False
        )
        self.learns_gamma = kind == "adaptive_focal" or (kind == "hybrid" and hybrid_focal == "adaptive_focal")
        if self.learns_gamma:
            inverse_softplus = math.log(math.expm1(gamma)) if gamma > 0 else -10.0
            self.raw_gamma = nn.Parameter(torch.full((n_labels,), inverse_softplus))

    @property
    def learned_gamma(self) -> torch.Tensor:
        return F.softplus(self.raw_gamma)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, criteria: torch.Tensor | None = None
    ) -> torch.Tensor:
        """logits, targets: (B, 9), or (B, 1) for pairs with ``criteria`` (B,) naming each row's criterion
        (whose class weight and learned gamma apply)."""
        targets = smooth(targets, self.label_smoothing)
        if self.kind == "hybrid":
            first = self._elementwise(self.hybrid_bce, logits, targets, criteria)
            second = self._elementwise(self.hybrid_focal, logits, targets, criteria)
            loss = (self.alpha * first + (1 - self.alpha) * second).mean()
        else:
            loss = self._elementwise(self.kind, logits, targets, criteria).mean()
        if self.learns_gamma:
            loss = loss + self.gamma_penalty * (self.learned_gamma - self.gamma).pow(2).mean()
        return loss

    def _elementwise(
        self, kind: str, logits: torch.Tensor, targets: torch.Tensor, criteria: torch.Tensor | None
    ) -> torch.Tensor:
        def per_row(values: torch.Tensor) -> torch.Tensor:
            return values if criteria is None else values[criteria].unsqueeze(1)

        if kind == "bce":
            return bce(logits, targets)
        if kind == "weighted_bce":
            return bce(logits, targets, per_row(self.pos_weight))
        if kind == "focal":
            return focal(logits, targets, self.gamma)
        return focal(logits, targets, per_row(self.learned_gamma))
