"""Evidence-informed criteria matching: an evidence vector, pooled from the token states under the
evidence head's soft token scores, combined with the post vector before the criteria head."""

from __future__ import annotations

import torch
from torch import nn


class EvidenceCoupling(nn.Module):
    """``pooling``: ``mean`` (evidence-weighted mean), ``max`` (max over the weighted token states) or
    ``attention`` (learned token scores plus the log evidence weight). ``combine``: ``concat`` (twice the
    width), ``sum``, ``weighted_sum`` (two learned scalars), ``mean`` or ``weighted_mean`` (softmax of two
    learned weights)."""

    def __init__(self, hidden_size: int, pooling: str, combine: str):
        super().__init__()
        self.pooling = pooling
        self.combine = combine
        self.out_size = 2 * hidden_size if combine == "concat" else hidden_size
        if pooling == "attention":
            self.score = nn.Linear(hidden_size, 1)
        if combine in ("weighted_sum", "weighted_mean"):
            self.weights = nn.Parameter(torch.ones(2) if combine == "weighted_sum" else torch.zeros(2))

    def forward(
        self, post: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """post (B, H); hidden (B, T, H); weights (B, T) in [0, 1]; mask (B, T) of the tokens that may count."""
        evidence = self._pool(hidden, weights * mask, mask.bool())
        if self.combine == "concat":
            return torch.cat([post, evidence], dim=-1)
        if self.combine == "sum":
            return post + evidence
        if self.combine == "mean":
            return (post + evidence) / 2
        w = self.weights if self.combine == "weighted_sum" else torch.softmax(self.weights, dim=0)
        return w[0] * post + w[1] * evidence

    def _pool(self, hidden: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "mean":
            return (weights.unsqueeze(-1) * hidden).sum(dim=1) / weights.sum(dim=1, keepdim=True).clamp(min=1e-6)
        if self.pooling == "max":
            weighted = weights.unsqueeze(-1) * hidden  # (B, T, H)
            weighted = weighted.masked_fill(~mask.unsqueeze(-1), torch.finfo(weighted.dtype).min)
            return weighted.max(dim=1).values
        scores = self.score(hidden).squeeze(-1) + torch.log(weights.clamp(min=1e-6))  # (B, T)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        return (torch.softmax(scores, dim=-1).unsqueeze(-1) * hidden).sum(dim=1)
