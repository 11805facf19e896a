"""Heads on the shared encoder: post pooling and criteria matching."""

from __future__ import annotations

import torch
from torch import nn

from redsm5_hpo.config.schema import CRITERIA_HEADS, POOLINGS
from redsm5_hpo.models.activations import activation


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, method: str) -> torch.Tensor:
    """hidden: (B, T, H), attention_mask: (B, T) -> (B, H). ``mean`` ignores padding."""
    if method == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class Pooler(nn.Module):
    """Token states -> one post vector: ``cls``, ``mean`` (mask-aware), ``attention`` (a learned query
    scores each token; padding gets no weight) or ``scalar_mix`` (learned softmax weights over the last
    two hidden layers, then mask-aware mean)."""

    def __init__(self, method: str, hidden_size: int):
        super().__init__()
        if method not in POOLINGS:
            raise ValueError(f"pooling {method!r}: one of {', '.join(POOLINGS)}")
        self.method = method
        self.needs_layers = method == "scalar_mix"
        if method == "attention":
            self.score = nn.Linear(hidden_size, 1)
        if method == "scalar_mix":
            self.mix = nn.Parameter(torch.zeros(2))
            self.gamma = nn.Parameter(torch.ones(1))

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, layers: tuple[torch.Tensor, ...] = ()
    ) -> torch.Tensor:
        if self.method == "attention":
            scores = self.score(hidden).squeeze(-1)  # (B, T), in autocast's dtype
            scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1).unsqueeze(-1)  # (B, T, 1)
            return (weights * hidden).sum(dim=1)
        if self.method == "scalar_mix":
            last_two = torch.stack(layers[-2:], dim=0)  # (2, B, T, H)
            mixed = self.gamma * (torch.softmax(self.mix, dim=0).view(2, 1, 1, 1) * last_two).sum(dim=0)
            return pool(mixed, attention_mask, "mean")
        return pool(hidden, attention_mask, self.method)


class MLPCriteriaHead(nn.Module):
    """Pooled post vector -> one logit per criterion through one hidden layer."""

    def __init__(self, hidden_size: int, head_hidden: int, n_labels: int, dropout: float, act: str = "gelu"):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden_size, head_hidden),
            activation(act),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, n_labels),
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)  # (B, n_labels)


class LinearCriteriaHead(nn.Module):
    def __init__(self, hidden_size: int, n_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, n_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(pooled))


class ResidualMLPCriteriaHead(nn.Module):
    """``x + MLP(LayerNorm(x))`` at the encoder width, then a linear layer to the logits."""

    def __init__(self, hidden_size: int, head_hidden: int, n_labels: int, dropout: float, act: str = "gelu"):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.block = nn.Sequential(
            nn.Linear(hidden_size, head_hidden),
            activation(act),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, hidden_size),
        )
        self.out = nn.Linear(hidden_size, n_labels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(pooled + self.block(self.norm(pooled))))


class GatedCriteriaHead(nn.Module):
    """A GLU hidden layer: ``(W1 x) * sigmoid(W2 x)``, then the logits (the gate is always a sigmoid)."""

    def __init__(self, hidden_size: int, head_hidden: int, n_labels: int, dropout: float):
        super().__init__()
        self.value = nn.Linear(hidden_size, head_hidden)
        self.gate = nn.Linear(hidden_size, head_hidden)
        self.out = nn.Linear(head_hidden, n_labels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = self.dropout(pooled)
        return self.out(self.dropout(self.value(x) * torch.sigmoid(self.gate(x))))


class MultiSampleDropoutHead(nn.Module):
    """The mean of the logits of ``samples`` dropout masks over one shared linear layer (training);
    a single pass without dropout at evaluation, where every sample would be the same."""

    def __init__(self, hidden_size: int, n_labels: int, dropout: float, samples: int):
        super().__init__()
        self.dropouts = nn.ModuleList(nn.Dropout(dropout) for _ in range(samples))
        self.linear = nn.Linear(hidden_size, n_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.linear(pooled)
        return torch.stack([self.linear(d(pooled)) for d in self.dropouts], dim=0).mean(dim=0)


def criteria_head(
    kind: str, hidden_size: int, head_hidden: int, n_labels: int, dropout: float, samples: int, act: str = "gelu"
) -> nn.Module:
    if kind == "linear":
        return LinearCriteriaHead(hidden_size, n_labels, dropout)
    if kind == "mlp":
        return MLPCriteriaHead(hidden_size, head_hidden, n_labels, dropout, act)
    if kind == "residual_mlp":
        return ResidualMLPCriteriaHead(hidden_size, head_hidden, n_labels, dropout, act)
    if kind == "gated":
        return GatedCriteriaHead(hidden_size, head_hidden, n_labels, dropout)
    if kind == "multi_sample_dropout":
        return MultiSampleDropoutHead(hidden_size, n_labels, dropout, samples)
    raise ValueError(f"criteria head {kind!r}: one of {', '.join(CRITERIA_HEADS)}")
