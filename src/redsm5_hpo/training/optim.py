"""AdamW or SGD with separate encoder / head learning rates, layer-wise LR decay and a linear
warmup-decay schedule."""

from __future__ import annotations

import re

import torch
from torch.optim.lr_scheduler import LambdaLR

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.models.model import CriteriaEvidenceModel

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
LAYER = re.compile(r"\.(?:layer|layers|block|h)\.(\d+)\.")


def layer_scale(name: str, num_layers: int, decay: float) -> float:
    """LR multiplier of encoder parameter ``name``: decay^(L - k) in layer k (1 = lowest) of L,
    decay^L in the embeddings, 1 elsewhere (e.g. a pooler above the layers)."""
    if decay == 1.0:
        return 1.0
    found = LAYER.search(f".{name}")
    if found:
        return decay ** (num_layers - 1 - int(found.group(1)))
    return decay**num_layers if "embeddings" in name else 1.0


def build_optimizer(model: CriteriaEvidenceModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (fused) or SGD over groups of encoder/head x decay/no-decay (no weight decay on biases and norms) x
    layer-wise LR scale (one scale unless ``layer_lr_decay`` < 1)."""
    head_ids = {id(p) for p in model.head_parameters()}
    num_layers = int(getattr(model.encoder_config, "num_hidden_layers", 0))
    groups: dict[tuple[bool, bool, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            is_head = id(param) in head_ids
            scale = 1.0 if is_head else layer_scale(name, num_layers, cfg.layer_lr_decay)
            key = (is_head, not any(n in name for n in NO_DECAY), -scale)
            groups.setdefault(key, []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": cfg.lr_head if is_head else cfg.lr_encoder * -negative_scale,
            "weight_decay": cfg.weight_decay if decay else 0.0,
            "name": "head" if is_head else "encoder",
            "lr_scale": -negative_scale,
        }
        for (is_head, decay, negative_scale), params in sorted(groups.items())
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr_head, momentum=cfg.momentum)
    # fused: one kernel per step for all parameters (CPU and CUDA), as the Hugging Face Trainer's default
    return torch.optim.AdamW(param_groups, fused=True)


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
        base = cfg.lr_head if group.get("name") == "head" else cfg.lr_encoder * group.get("lr_scale", 1.0)
        if scheduler.base_lrs[index] != base:
            scheduler.base_lrs[index] = base
            group["initial_lr"] = base
            group["lr"] = base * scheduler.lr_lambdas[index](scheduler.last_epoch)
