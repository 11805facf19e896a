"""The criteria-matching + evidence-binding model on one shared encoder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from redsm5_hpo.config.schema import ModelConfig
from redsm5_hpo.labels import SYMPTOMS
from redsm5_hpo.models.coupling import EvidenceCoupling
from redsm5_hpo.models.evidence_heads import evidence_head
from redsm5_hpo.models.heads import Pooler, criteria_head
from redsm5_hpo.models.losses import CriteriaLoss
from redsm5_hpo.models.windows import WindowPooling


@dataclass
class ModelOutput:
    criteria_logits: torch.Tensor
    """(B, 9): one logit per criterion and unit, in ``SYMPTOMS`` order; (B, 1) in the pair format."""
    evidence_logits: torch.Tensor
    """The evidence head's output, one row per window: (W, T) token logits, (W, T, 2) start/end, (W, T, T)
    span scores, (W, T, 3) BIO emissions or (W, S) sentence logits."""


class CriteriaEvidenceModel(nn.Module):
    def __init__(
        self, encoder: nn.Module, cfg: ModelConfig, criteria_loss: CriteriaLoss | None = None, pairs: bool = False
    ):
        """``pairs``: the pair input format, one logit per (post, criterion) example instead of nine."""
        super().__init__()
        encoder_config: Any = encoder.config
        hidden_size = int(encoder_config.hidden_size)
        self.encoder_config = encoder_config
        self.encoder = encoder
        self.cfg = cfg
        self.pooler = Pooler(cfg.pooling, hidden_size)
        self.coupling = (
            EvidenceCoupling(hidden_size, cfg.evidence_pooling, cfg.coupling_combine)
            if cfg.coupling == "evidence_informed"
            else None
        )
        criteria_input = self.coupling.out_size if self.coupling else hidden_size
        self.pairs = pairs
        outputs = 1 if pairs else len(SYMPTOMS)
        self.criteria_head = criteria_head(
            cfg.criteria_head,
            criteria_input,
            cfg.head_hidden,
            outputs,
            cfg.dropout,
            cfg.dropout_samples,
            cfg.activation,
        )
        self.evidence_head = evidence_head(
            cfg.evidence_head, hidden_size, cfg.dropout, cfg.evidence_hidden, cfg.max_span_tokens, cfg.activation
        )
        self.criteria_loss = criteria_loss or CriteriaLoss()
        # last: a learned window pooling must not shift the initial weights of the heads above
        self.window_pooling = WindowPooling(cfg.window_pooling, criteria_input)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ModelOutput:
        """Every window is encoded and pooled on its own (and coupled with its evidence); a unit's window
        vectors are then pooled into the one vector its criteria logits come from."""
        attention_mask = batch["attention_mask"]
        out = self.encoder(
            input_ids=batch["input_ids"], attention_mask=attention_mask, output_hidden_states=self.pooler.needs_layers
        )
        hidden = out.last_hidden_state  # (B, T, H)
        pooled = self.pooler(hidden, attention_mask, out.hidden_states or ())  # (W, H)
        if self.coupling is None:
            # criteria head first: dropout draws in the order earlier versions used, so a seed replays
            criteria = self.criteria_head(self._per_unit(pooled, batch))
            return ModelOutput(criteria, self.evidence_head(hidden, batch))
        evidence = self.evidence_head(hidden, batch)
        weights = self.evidence_head.token_scores(evidence, batch)
        pooled = self.coupling(pooled, hidden, weights, batch["content_mask"].to(hidden.dtype))
        return ModelOutput(self.criteria_head(self._per_unit(pooled, batch)), evidence)

    def _per_unit(self, windows: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if "window_unit" not in batch:
            return windows
        return self.window_pooling(windows, batch["window_unit"], batch["labels"].shape[0])

    def loss(
        self,
        output: ModelOutput,
        batch: Mapping[str, torch.Tensor],
        evidence_weight: float,
        criteria_weight: float = 1.0,
    ) -> torch.Tensor:
        """Task-weighted sum of the criteria loss and the evidence head's own loss, computed in fp32 whatever
        precision the forward pass ran in."""
        criteria = self.criteria_loss(output.criteria_logits.float(), batch["labels"], batch.get("criteria"))
        evidence = self.evidence_head.loss(output.evidence_logits.float(), batch)
        return criteria_weight * criteria + evidence_weight * evidence

    def head_parameters(self) -> list[nn.Parameter]:
        """Everything but the encoder: trained at the head learning rate."""
        encoder = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder]

    def architecture_signature(self) -> str:
        """Identifies what a checkpoint's weights fit: encoder class and size, heads, pooling, coupling."""
        c, m = self.encoder_config, self.cfg
        signature = (
            f"{type(self.encoder).__name__}(layers={c.num_hidden_layers},hidden={c.hidden_size},vocab={c.vocab_size})"
            f"+{m.criteria_head}({m.head_hidden})"
        )
        if m.activation != "gelu":
            signature += f"[{m.activation}]"
        if m.evidence_head == "token":
            signature += "+token_evidence"
        else:
            signature += f"+{m.evidence_head}({m.evidence_hidden},span={m.max_span_tokens})"
        signature += f"+pool={m.pooling}"
        if self.coupling is not None:
            signature += f"+coupled({m.evidence_pooling},{m.coupling_combine})"
        if self.pairs:
            signature += "+pairs"
        if self.window_pooling.scorer is not None:
            signature += "+window_attention"
        if self.criteria_loss.learns_gamma:
            signature += "+learned_gamma"
        return signature
