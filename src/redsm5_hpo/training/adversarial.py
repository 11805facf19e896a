"""FGM adversarial training: a second loss with the word embeddings pushed along their gradient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.devices import Runtime
from redsm5_hpo.models.model import CriteriaEvidenceModel


class FGM:
    """After the clean backward pass: add ``epsilon * g / ||g||`` to the rows of the word-embedding
    matrix the batch used (g their gradient), backpropagate the loss at the perturbed embeddings on top of
    the clean gradients, then put the embeddings back. The optimizer steps on the sum of both gradients."""

    def __init__(self, model: CriteriaEvidenceModel, cfg: TrainConfig):
        self.cfg = cfg
        embeddings = cast(Any, model.encoder).get_input_embeddings()
        assert isinstance(embeddings, torch.nn.Embedding)
        self.weight = embeddings.weight

    def attack(
        self,
        model: CriteriaEvidenceModel,
        batch: Mapping[str, torch.Tensor],
        accumulation: int,
        runtime: Runtime,
        scaler: torch.amp.GradScaler,
    ) -> None:
        """The perturbed pass, under the same autocast and loss scale as the clean one (a scaled gradient
        points the same way, so the perturbation does not depend on the scale). Nothing here reads a GPU
        value on the host: a zero or non-finite gradient norm (fp16 overflow) gives a zero perturbation and
        a zero-weighted second loss instead of a Python branch."""
        grad = self.weight.grad
        if grad is None:
            return
        norm = torch.linalg.vector_norm(grad)
        usable = torch.isfinite(norm) & (norm > 0)  # 0-dim, on the device
        rows = batch["input_ids"].flatten()  # the tokens of this batch: the only rows with a gradient
        scale = torch.where(usable, self.cfg.fgm_epsilon / norm, torch.zeros_like(norm))
        delta = torch.nan_to_num(grad[rows] * scale, nan=0.0, posinf=0.0, neginf=0.0)
        saved = self.weight.detach()[rows].clone()  # a token repeated in the batch writes the same row twice
        with torch.no_grad():
            self.weight[rows] += delta
        try:
            with runtime.compute():
                loss = model.loss(model(batch), batch, self.cfg.evidence_loss_weight, self.cfg.criteria_loss_weight)
            scaler.scale(loss * usable.to(loss.dtype) / accumulation).backward()
        finally:
            with torch.no_grad():
                self.weight[rows] = saved  # exact restore, not a subtraction
