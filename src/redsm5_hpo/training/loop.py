"""The epoch loop: train with gradient accumulation and mixed precision, validate, tell the hooks.

Checkpointing and tracking are hooks: the loop only trains, validates and reports. Batches go to the
device right after collation; the loss comes back to the CPU every ``LOSS_SYNC_STEPS`` steps (a GPU is
not stalled at every step to read it), where a non-finite value stops the trial before any checkpoint of
the diverged weights is written.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.data.batching import EpochBatchSampler, seed_worker
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.devices import Runtime
from redsm5_hpo.evaluation.metrics import metric_direction, metric_keys, oriented, worst_value
from redsm5_hpo.evaluation.predict import predict, score
from redsm5_hpo.faults import fault_point
from redsm5_hpo.interrupts import raise_if_requested
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.training.adversarial import FGM
from redsm5_hpo.training.optim import apply_learning_rates, build_optimizer, linear_warmup_decay
from redsm5_hpo.training.seeding import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

LOSS_SYNC_STEPS = 16
"""Batches between two reads of the training loss (progress bar, non-finite check)."""


@dataclass
class LoopState:
    model: CriteriaEvidenceModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    """fp16 loss scaling; a pass-through in fp32 and bf16."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where the model trains: its CUDA generator is part of the resume state."""
    epoch: int = 0
    """Epochs completed."""
    global_step: int = 0
    """Optimizer steps taken."""
    best_value: float = -math.inf
    """The best objective so far (the worst possible value before the first epoch)."""
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    global_step: int
    metrics: dict[str, float]
    """``train_loss``, ``train_padding_share``, ``lr_*`` and every ``val_*`` metric of this epoch."""
    objective: float
    is_best: bool
    """At least as good as every earlier epoch in the objective's direction (ties are co-best)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the trial stops with reason ``non_finite_loss``."""

    def __init__(self, epoch: int, batch: int, global_step: int, value: float, precision: str):
        self.reason = (
            f"non_finite_loss: the training loss was {value} at epoch {epoch}, batch {batch} (after optimizer step "
            f"{global_step})"
        )
        fix = (
            "the model diverged. Roll the trial back to a checkpoint from before it with lower learning rates "
            "(redsm5-hpo rollback --trial ID --epoch N --set train.lr_encoder=... --set train.lr_head=..., then "
            "redsm5-hpo resume)"
        )
        if precision != "fp32":
            fix += f", or train in fp32 instead of {precision} (train.precision=fp32)"
        super().__init__(f"{self.reason}; {fix}")
        self.epoch, self.batch, self.global_step = epoch, batch, global_step


def epoch_metric_names() -> list[str]:
    """Every metric ``fit`` logs at each epoch (step = epoch): what ``verify`` expects per epoch."""
    return ["train_loss", "train_padding_share", "lr_encoder", "lr_head", *metric_keys("val")]


class TrainingHook(Protocol):
    """Told each epoch's result. A hook may also define ``on_step_end(state)``, called after every
    optimizer step (the checkpoint hook raises a failed background write there)."""

    def on_epoch_end(self, state: LoopState, result: EpochResult) -> None: ...


@dataclass(frozen=True)
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_value: float


@dataclass(frozen=True)
class FitOptions:
    """How ``fit`` runs, beside what it trains."""

    hooks: Sequence[TrainingHook] = ()
    """Told each epoch's result (and each step's, those with ``on_step_end``), in order."""
    progress: bool = True
    """Progress bars for epochs and batches (on a terminal only)."""
    resume_from: dict[str, Any] | None = None
    """A checkpoint's training state (the model already holds its weights): the run continues after that
    epoch exactly as an uninterrupted run would on the same device."""
    evidence_level: str = "char"
    """The level of ``val_evidence_f1`` (``evaluation.evidence_metric``)."""


def fit(
    model: CriteriaEvidenceModel,
    train_set: MultiLabelDataset,
    val_set: MultiLabelDataset,
    cfg: TrainConfig,
    seed: int,
    runtime: Runtime,
    options: FitOptions = FitOptions(),
) -> FitResult:
    """Train for ``cfg.epochs`` epochs on ``runtime``'s device (the model is already there), validating
    after each one; the best epoch is the best in the objective's direction (``metric_direction``)."""
    hooks, progress, resume_from = options.hooks, options.progress, options.resume_from
    loader = train_loader(train_set, cfg, seed, runtime)
    sampler = cast(EpochBatchSampler, loader.batch_sampler)
    batches = {e: min(sampler.count(e), cfg.max_steps_per_epoch or sampler.count(e)) for e in range(1, cfg.epochs + 1)}
    optimizer = build_optimizer(model, cfg)
    total_steps = sum(math.ceil(n / cfg.grad_accum_steps) for n in batches.values())
    scheduler = linear_warmup_decay(optimizer, total_steps, cfg.warmup_ratio)
    direction = metric_direction(cfg.optimization_metric)
    state = LoopState(
        model, optimizer, scheduler, runtime.grad_scaler(), runtime.device, best_value=worst_value(direction)
    )
    if resume_from is not None:
        _restore(state, resume_from)
        apply_learning_rates(state.optimizer, state.scheduler, cfg)
    log.info("training from epoch %d of %d on %s (%s)", state.epoch + 1, cfg.epochs, runtime.name, runtime.precision)
    epochs_bar = tqdm(
        total=cfg.epochs,
        initial=state.epoch,
        desc="epochs",
        unit="epoch",
        position=1,
        leave=False,
        disable=None if progress else True,
    )
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        sampler.set_epoch(epoch)
        loss, padding = _train_epoch(state, loader, cfg, runtime, epoch, batches[epoch], progress, hooks)
        lrs = state.scheduler.get_last_lr()
        metrics = {"train_loss": loss, "train_padding_share": padding}
        metrics |= {"lr_encoder": float(lrs[0]), "lr_head": float(lrs[-1])}
        metrics |= score(predict(model, val_set, cfg, runtime), val_set, "val", evidence_level=options.evidence_level)
        objective = metrics[cfg.optimization_metric]
        is_best = oriented(objective, direction) >= oriented(state.best_value, direction)
        if oriented(objective, direction) > oriented(state.best_value, direction):
            state.best_epoch = epoch
            state.best_value = objective
        state.epoch = epoch
        state.history.append(metrics)
        result = EpochResult(epoch, state.global_step, metrics, objective, is_best)
        for hook in hooks:
            hook.on_epoch_end(state, result)
        epochs_bar.update(1)
        epochs_bar.set_postfix({cfg.optimization_metric: f"{objective:.4f}"})
    epochs_bar.close()
    return FitResult(state.history, state.best_epoch, state.best_value)


def train_loader(dataset: MultiLabelDataset, cfg: TrainConfig, seed: int, runtime: Runtime) -> DataLoader[Any]:
    """Seeded batches (``data.batching``), prepared by ``cfg.num_workers`` persistent worker processes
    seeded from the run seed, page-locked for a CUDA device. The DataLoader's own generator is private,
    so creating it draws nothing from the global RNGs the model's dropout uses."""
    workers = cfg.num_workers
    return DataLoader(
        dataset,
        batch_sampler=EpochBatchSampler(
            dataset.lengths, cfg.batch_size, seed, cfg.group_by_length, dataset.window_counts
        ),
        collate_fn=dataset.collate,
        num_workers=workers,
        pin_memory=runtime.pin_memory,
        persistent_workers=workers > 0,
        worker_init_fn=functools.partial(seed_worker, seed) if workers else None,
        generator=torch.Generator().manual_seed(seed),
    )


def resume_state(state: LoopState) -> dict[str, Any]:
    """Everything ``FitOptions.resume_from`` needs, as tensors and plain values (``weights_only``-loadable).
    The tensors are the live ones: ``checkpoints.snapshot`` copies them before training goes on."""
    return {
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "grad_scaler": state.scaler.state_dict(),
        "rng": capture_rng_state(state.device),
        "epoch": state.epoch,
        "global_step": state.global_step,
        "best_value": state.best_value,
        "best_epoch": state.best_epoch,
        "history": state.history,
    }


def _restore(state: LoopState, saved: dict[str, Any]) -> None:
    state.optimizer.load_state_dict(saved["optimizer"])  # moves the moments to the parameters' device
    state.scheduler.load_state_dict(saved["scheduler"])
    if state.scaler.is_enabled() and saved.get("grad_scaler"):
        state.scaler.load_state_dict(saved["grad_scaler"])
    state.epoch = int(saved["epoch"])
    state.global_step = int(saved["global_step"])
    state.best_value = float(saved["best_value"])
    state.best_epoch = int(saved["best_epoch"])
    state.history = [dict(h) for h in saved["history"]]
    restore_rng_state(saved["rng"], state.device)  # last: building the model and optimizer above drew from the RNGs


def _train_epoch(
    state: LoopState,
    loader: DataLoader[Any],
    cfg: TrainConfig,
    runtime: Runtime,
    epoch: int,
    batches: int,
    progress: bool,
    hooks: Sequence[TrainingHook],
) -> tuple[float, float]:
    """One epoch; returns (mean training loss per unit, share of token slots that were padding)."""
    model, scaler = state.model, state.scaler
    model.train()
    fgm = FGM(model, cfg) if cfg.fgm_epsilon > 0 else None
    step_hooks = [h for h in hooks if hasattr(h, "on_step_end")]
    tracker = _LossTracker(epoch, runtime.precision)
    tokens = slots = 0
    # per-step work kept to what a step needs: the parameter list is walked once per epoch, not per step;
    # the loss scaler (fp16 only) and the accumulation division are skipped where they change nothing
    parameters = [p for p in model.parameters() if p.requires_grad]
    scaling = scaler.is_enabled()
    scale = scaler.get_scale() if scaling else 1.0  # fp16: read once per step, after it
    # disable=None: bars only on a terminal, so redirected logs stay readable
    bar = tqdm(
        total=batches,
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        position=2,
        leave=False,
        disable=None if progress else True,
    )
    for index, cpu_batch in enumerate(loader):
        if index >= batches:
            break
        raise_if_requested()  # a SIGTERM / SIGINT stops here; the trial resumes from its newest checkpoint
        tokens += int(cpu_batch["attention_mask"].sum())
        slots += cpu_batch["attention_mask"].numel()
        batch = runtime.to_device(cpu_batch)
        with runtime.compute():
            loss = model.loss(model(batch), batch, cfg.evidence_loss_weight, cfg.criteria_loss_weight)
        share = loss / cfg.grad_accum_steps if cfg.grad_accum_steps > 1 else loss
        (scaler.scale(share) if scaling else share).backward()
        if fgm is not None:
            fgm.attack(model, batch, cfg.grad_accum_steps, runtime, scaler)
        tracker.add(loss, len(cpu_batch["labels"]), state.global_step)
        if (index + 1) % cfg.grad_accum_steps == 0 or index + 1 == batches:
            stepped = True
            if scaling:
                scaler.unscale_(state.optimizer)
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                scaler.step(state.optimizer)  # skipped when the gradients overflowed (the scale backs off)
                scaler.update()
                stepped, scale = _scale_kept(scaler, scale)
            else:
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                state.optimizer.step()
            if stepped:
                state.scheduler.step()  # the schedule follows the steps actually taken, as the Trainer's
            state.optimizer.zero_grad(set_to_none=True)
            state.global_step += 1
            for hook in step_hooks:
                cast(Any, hook).on_step_end(state)
        bar.update(1)
        fault_point("mid_epoch")
        if (index + 1) % LOSS_SYNC_STEPS == 0:
            bar.set_postfix(loss=f"{tracker.sync():.4f}")
    mean = tracker.sync()
    bar.close()
    return mean, (1 - tokens / slots if slots else 0.0)


def _scale_kept(scaler: torch.amp.GradScaler, before: float) -> tuple[bool, float]:
    """Whether the optimizer step was taken (a skipped step backs the loss scale off) and the scale now: one
    read of the scale per step (a GPU sync), compared with the one read after the previous step."""
    now = scaler.get_scale()
    return now >= before, now


class _LossTracker:
    """Keeps the batch losses on the device and reads them back only at ``sync``, where a NaN or infinite
    one raises ``NonFiniteLossError`` naming its batch. The mean is accumulated in float64 on the CPU."""

    def __init__(self, epoch: int, precision: str):
        self.epoch = epoch
        self.precision = precision
        self.window: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.steps: list[int] = []
        """Optimizer steps taken before each batch of the window."""
        self.batches = 0
        self.total = 0.0
        self.examples = 0

    def add(self, loss: torch.Tensor, examples: int, global_step: int) -> None:
        self.window.append(loss.detach().float())
        self.sizes.append(examples)
        self.steps.append(global_step)

    def sync(self) -> float:
        if self.window:
            values = torch.stack(self.window).tolist()  # one device-to-host copy per window
            for offset, (value, size) in enumerate(zip(values, self.sizes, strict=True)):
                if not math.isfinite(value):
                    batch = self.batches + offset + 1
                    raise NonFiniteLossError(self.epoch, batch, self.steps[offset], value, self.precision)
                self.total += value * size
                self.examples += size
            self.batches += len(values)
            self.window, self.sizes, self.steps = [], [], []
        return self.total / max(self.examples, 1)


def time_training_step(
    model: CriteriaEvidenceModel, dataset: MultiLabelDataset, cfg: TrainConfig, runtime: Runtime, seed: int
) -> tuple[float, int]:
    """(seconds one training step takes, training batches per epoch): forward, loss and backward on the
    first batch of epoch 1, the best of two after a warm-up. The gradients are cleared after; the weights
    are not changed."""
    loader = train_loader(dataset, dataclasses.replace(cfg, num_workers=0), seed, runtime)
    sampler = cast(EpochBatchSampler, loader.batch_sampler)
    batches = min(sampler.count(1), cfg.max_steps_per_epoch or sampler.count(1))
    batch = runtime.to_device(next(iter(loader)))
    model.train()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with runtime.compute():
            loss = model.loss(model(batch), batch, cfg.evidence_loss_weight, cfg.criteria_loss_weight)
        loss.backward()
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)
        times.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return min(times[1:]), batches
