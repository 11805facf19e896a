"""FGM adversarial training (M-15): a second loss with the word embeddings pushed along their gradient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.devices import Runtime
from redsm5_hpo.models.losses import total_loss
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
        points the same way, so the perturbation does not depend on the scale)."""
        grad = self.weight.grad
        if grad is None:
            return
        norm = torch.linalg.vector_norm(grad)
        if not torch.isfinite(norm) or norm == 0:
            return
        rows = torch.nonzero(grad.abs().sum(dim=1), as_tuple=True)[0]  # the tokens of this batch
        saved = self.weight.detach()[rows].clone()
        with torch.no_grad():
            self.weight[rows] += self.cfg.fgm_epsilon * grad[rows] / norm
        try:
            with runtime.autocast():
                loss = total_loss(
                    model, model(batch), batch, self.cfg.evidence_loss_weight, self.cfg.criteria_loss_weight
                )
            scaler.scale(loss / accumulation).backward()
        finally:
            with torch.no_grad():
                self.weight[rows] = saved  # exact restore, not a subtraction
