"""The criteria-matching + evidence-binding model on one shared encoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from redsm5_hpo.config.schema import ModelConfig
from redsm5_hpo.labels import SYMPTOMS
from redsm5_hpo.models.heads import Pooler, TokenEvidenceHead, criteria_head


@dataclass
class ModelOutput:
    criteria_logits: torch.Tensor
    """(B, 9): one logit per criterion, in ``SYMPTOMS`` order."""
    evidence_logits: torch.Tensor
    """(B, T): one logit per token."""


class CriteriaEvidenceModel(nn.Module):
    def __init__(self, encoder: nn.Module, cfg: ModelConfig):
        super().__init__()
        encoder_config: Any = encoder.config
        hidden_size = int(encoder_config.hidden_size)
        self.encoder_config = encoder_config
        self.encoder = encoder
        self.pooling = cfg.pooling
        self.head_kind = cfg.criteria_head
        self.head_hidden = cfg.head_hidden
        self.pooler = Pooler(cfg.pooling, hidden_size)
        self.criteria_head = criteria_head(
            cfg.criteria_head, hidden_size, cfg.head_hidden, len(SYMPTOMS), cfg.dropout, cfg.dropout_samples
        )
        self.evidence_head = TokenEvidenceHead(hidden_size, cfg.dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> ModelOutput:
        out = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=self.pooler.needs_layers
        )
        hidden = out.last_hidden_state  # (B, T, H)
        pooled = self.pooler(hidden, attention_mask, out.hidden_states or ())  # (B, H)
        return ModelOutput(self.criteria_head(pooled), self.evidence_head(hidden))

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.pooler.parameters(), *self.criteria_head.parameters(), *self.evidence_head.parameters()]

    def architecture_signature(self) -> str:
        """Identifies what a checkpoint's weights fit: encoder class and size, heads and pooling."""
        c = self.encoder_config
        return (
            f"{type(self.encoder).__name__}(layers={c.num_hidden_layers},hidden={c.hidden_size},vocab={c.vocab_size})"
            f"+{self.head_kind}({self.head_hidden})+token_evidence+pool={self.pooling}"
        )
