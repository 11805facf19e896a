"""Heads on the shared encoder: post pooling, criteria matching, evidence tagging."""

from __future__ import annotations

import torch
from torch import nn


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, method: str) -> torch.Tensor:
    """hidden: (B, T, H), attention_mask: (B, T) -> (B, H). ``mean`` ignores padding."""
    if method == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class MLPCriteriaHead(nn.Module):
    """Pooled post vector -> one logit per criterion through one hidden layer."""

    def __init__(self, hidden_size: int, head_hidden: int, n_labels: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden_size, head_hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, n_labels),
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)  # (B, n_labels)


class TokenEvidenceHead(nn.Module):
    """Token states -> one logit per token: is this token part of an evidence sentence?

    A post without evidence is simply all-negative, so "no evidence" needs no special case.
    """

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(hidden)).squeeze(-1)  # (B, T)
