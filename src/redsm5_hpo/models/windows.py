"""Window vectors -> one vector per unit (a post, or a post-criterion pair) for the criteria head."""

from __future__ import annotations

import torch
from torch import nn


class WindowPooling(nn.Module):
    """``max`` or ``mean`` over a unit's windows, or ``attention``: a learned score per window, softmax
    within the unit. A batch whose units are one window each passes through unchanged (no arithmetic),
    so posts that fit in one window get exactly the logits they get without windows."""

    def __init__(self, mode: str, size: int):
        super().__init__()
        self.mode = mode
        self.scorer = nn.Linear(size, 1) if mode == "attention" else None

    def forward(self, vectors: torch.Tensor, window_unit: torch.Tensor, units: int) -> torch.Tensor:
        """(W, D) window vectors, (W,) the unit of each window -> (units, D)."""
        if vectors.shape[0] == units:
            return vectors
        index = window_unit[:, None].expand_as(vectors)
        if self.scorer is None:
            reduce = "amax" if self.mode == "max" else "mean"
            return vectors.new_zeros((units, vectors.shape[1])).scatter_reduce(
                0, index, vectors, reduce, include_self=False
            )
        scores = self.scorer(vectors).squeeze(-1).float()  # (W,)
        top = scores.new_full((units,), -torch.inf).scatter_reduce(0, window_unit, scores.detach(), "amax")
        weights = torch.exp(scores - top[window_unit])
        weights = weights / weights.new_zeros(units).index_add(0, window_unit, weights)[window_unit]
        weighted = weights.to(vectors.dtype)[:, None] * vectors
        return vectors.new_zeros((units, vectors.shape[1])).index_add(0, window_unit, weighted)
