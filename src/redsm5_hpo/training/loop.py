"""The epoch loop: train with gradient accumulation, validate, tell the hooks.

Checkpointing and tracking are hooks: the loop only trains, validates and reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.evaluation.metrics import metric_keys
from redsm5_hpo.evaluation.predict import predict, score
from redsm5_hpo.faults import fault_point
from redsm5_hpo.models.losses import total_loss
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.training.adversarial import FGM
from redsm5_hpo.training.optim import apply_learning_rates, build_optimizer, linear_warmup_decay
from redsm5_hpo.training.seeding import capture_rng_state, epoch_generator, restore_rng_state

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    model: CriteriaEvidenceModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    epoch: int = 0
    """Epochs completed."""
    global_step: int = 0
    """Optimizer steps taken."""
    best_value: float = -math.inf
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    global_step: int
    metrics: dict[str, float]
    """``train_loss``, ``lr_*`` and every ``val_*`` metric of this epoch."""
    objective: float
    is_best: bool
    """At least as good as every earlier epoch (ties are co-best)."""


def epoch_metric_names() -> list[str]:
    """Every metric ``fit`` logs at each epoch (step = epoch): what ``verify`` expects per epoch."""
    return ["train_loss", "lr_encoder", "lr_head", *metric_keys("val")]


class TrainingHook(Protocol):
    def on_epoch_end(self, state: LoopState, result: EpochResult) -> None: ...


@dataclass(frozen=True)
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_value: float


def fit(
    model: CriteriaEvidenceModel,
    train_set: MultiLabelDataset,
    val_set: MultiLabelDataset,
    cfg: TrainConfig,
    seed: int,
    hooks: Sequence[TrainingHook] = (),
    progress: bool = True,
    resume_from: dict[str, Any] | None = None,
) -> FitResult:
    """Train for ``cfg.epochs`` epochs, validating after each one. ``resume_from`` is a checkpoint's
    training state (the model already holds its weights): the run continues after that epoch exactly as
    an uninterrupted run would."""
    batches = len(train_set) // cfg.batch_size + bool(len(train_set) % cfg.batch_size)
    batches = min(batches, cfg.max_steps_per_epoch or batches)
    optimizer = build_optimizer(model, cfg)
    total_steps = math.ceil(batches / cfg.grad_accum_steps) * cfg.epochs
    state = LoopState(model, optimizer, linear_warmup_decay(optimizer, total_steps, cfg.warmup_ratio))
    if resume_from is not None:
        _restore(state, resume_from)
        apply_learning_rates(state.optimizer, state.scheduler, cfg)
    log.info("training from epoch %d of %d", state.epoch + 1, cfg.epochs)
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        train_loss = _train_epoch(state, train_set, cfg, seed, epoch, batches, progress)
        lrs = state.scheduler.get_last_lr()
        metrics = {"train_loss": train_loss, "lr_encoder": float(lrs[0]), "lr_head": float(lrs[-1])}
        metrics |= score(predict(model, val_set, cfg), val_set, "val")
        objective = metrics[cfg.optimization_metric]
        is_best = objective >= state.best_value
        if objective > state.best_value:
            state.best_epoch = epoch
        state.best_value = max(state.best_value, objective)
        state.epoch = epoch
        state.history.append(metrics)
        result = EpochResult(epoch, state.global_step, metrics, objective, is_best)
        for hook in hooks:
            hook.on_epoch_end(state, result)
    return FitResult(state.history, state.best_epoch, state.best_value)


def resume_state(state: LoopState) -> dict[str, Any]:
    """Everything ``fit(resume_from=...)`` needs, as tensors and plain values (``weights_only``-loadable)."""
    return {
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "rng": capture_rng_state(),
        "epoch": state.epoch,
        "global_step": state.global_step,
        "best_value": state.best_value,
        "best_epoch": state.best_epoch,
        "history": state.history,
    }


def _restore(state: LoopState, saved: dict[str, Any]) -> None:
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.epoch = int(saved["epoch"])
    state.global_step = int(saved["global_step"])
    state.best_value = float(saved["best_value"])
    state.best_epoch = int(saved["best_epoch"])
    state.history = [dict(h) for h in saved["history"]]
    restore_rng_state(saved["rng"])  # last: building the model and optimizer above drew from the RNGs


def _train_epoch(
    state: LoopState, dataset: MultiLabelDataset, cfg: TrainConfig, seed: int, epoch: int, batches: int, progress: bool
) -> float:
    model = state.model
    model.train()
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=epoch_generator(seed, epoch),
        collate_fn=dataset.collate,
    )
    fgm = FGM(model, cfg) if cfg.fgm_epsilon > 0 else None
    total, seen = 0.0, 0
    # disable=None: bars only on a terminal, so redirected logs stay readable
    bar = tqdm(
        total=batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False, disable=None if progress else True
    )
    for index, batch in enumerate(loader):
        if index >= batches:
            break
        loss = total_loss(model, model(batch), batch, cfg.evidence_loss_weight, cfg.criteria_loss_weight)
        (loss / cfg.grad_accum_steps).backward()
        if fgm is not None:
            fgm.attack(model, batch, cfg.grad_accum_steps)
        if (index + 1) % cfg.grad_accum_steps == 0 or index + 1 == batches:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            state.optimizer.step()
            state.scheduler.step()
            state.optimizer.zero_grad(set_to_none=True)
            state.global_step += 1
        total += loss.item() * len(batch["labels"])
        seen += len(batch["labels"])
        bar.update(1)
        fault_point("mid_epoch")
        bar.set_postfix(loss=f"{total / seen:.4f}")
    bar.close()
    return total / max(seen, 1)
