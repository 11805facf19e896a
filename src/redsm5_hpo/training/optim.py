"""AdamW or SGD with separate encoder / head learning rates and a linear warmup-decay schedule."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.models.model import CriteriaEvidenceModel

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def build_optimizer(model: CriteriaEvidenceModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over four groups: encoder/head x decay/no-decay (no weight decay on biases and norms)."""
    head_ids = {id(p) for p in model.head_parameters()}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (id(param) in head_ids, not any(n in name for n in NO_DECAY))
            groups.setdefault(key, []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": cfg.lr_head if is_head else cfg.lr_encoder,
            "weight_decay": cfg.weight_decay if decay else 0.0,
            "name": "head" if is_head else "encoder",
        }
        for (is_head, decay), params in sorted(groups.items())
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr_head, momentum=cfg.momentum)
    return torch.optim.AdamW(param_groups)


def linear_warmup_decay(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    """LR rises linearly for ``warmup_ratio`` of the steps, then falls linearly to 0."""
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)


def apply_learning_rates(optimizer: torch.optim.Optimizer, scheduler: LambdaLR, cfg: TrainConfig) -> None:
    """Make restored optimizer/scheduler state follow ``cfg``'s learning rates (a rollback may lower them);
    with unchanged rates this changes nothing, so a plain resume stays exact."""
    for index, group in enumerate(optimizer.param_groups):
        base = cfg.lr_head if group.get("name") == "head" else cfg.lr_encoder
        if scheduler.base_lrs[index] != base:
            scheduler.base_lrs[index] = base
            group["initial_lr"] = base
            group["lr"] = base * scheduler.lr_lambdas[index](scheduler.last_epoch)
