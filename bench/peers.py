"""Side by side with the peers on the same encoder, data and epochs:

B1 (HF): the Hugging Face Trainer's usual storage recipe, ``save_total_limit=2`` +
    ``load_best_model_at_end=True``, for the same trials B1 runs: bytes kept at the end and the most
    ever on disk (sampled every 50 ms and after every save).
B5: CPU time of the disk guard's checks as a share of the interval it runs at.
B6: epoch time of our full loop (tracking, checkpoints, disk guard) vs a bare PyTorch loop vs the Trainer
    (saving each epoch), on the same model and batches, each scoring validation with our functions at
    every epoch; and the training part of the epoch alone.
B8: training throughput (examples/s, tokens/s) of our loop in fp32 and in bf16 autocast.
B10: the loop's own cost per training step over a bare loop, on the tiny encoder (steps of milliseconds,
    as on a GPU, where per-step host work would show).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader

from redsm5_hpo.checkpoints.disk import Thresholds, tree_bytes
from redsm5_hpo.checkpoints.manager import CheckpointManager
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.config.loading import apply_overrides, load_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.batching import EpochBatchSampler, epoch_batches
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.devices import configure_determinism, resolve_runtime
from redsm5_hpo.evaluation.predict import predict, score
from redsm5_hpo.pipeline import run_single
from redsm5_hpo.pipeline import trial as trial_module
from redsm5_hpo.pipeline.builders import build_model, split_datasets
from redsm5_hpo.training import loop as loop_module
from redsm5_hpo.training.loop import FitOptions
from redsm5_hpo.training.optim import build_optimizer, linear_warmup_decay

REPO = Path(__file__).resolve().parents[1]


class _LossModule(torch.nn.Module):
    """Our model as the Trainer wants it: keyword batch in, ``{"loss": ...}`` out."""

    def __init__(self, model: torch.nn.Module, evidence_weight: float):
        super().__init__()
        self.model = model
        self.evidence_weight = evidence_weight

    def forward(self, **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": self.model.loss(self.model(batch), batch, self.evidence_weight)}


def _datasets(config: Config, tokenizer: Any) -> tuple[MultiLabelDataset, MultiLabelDataset]:
    train_set, val_set = split_datasets(config, load_corpus(config.data, config.seed), tokenizer, "train", "validation")
    return train_set, val_set


class _DiskSampler:
    """The most bytes ever under ``root`` while the block runs (sampled every 50 ms)."""

    def __init__(self, root: Path):
        self.root, self.peak, self._stop = root, 0, threading.Event()

    def sample(self) -> None:
        with contextlib.suppress(FileNotFoundError):  # a checkpoint was being rotated away
            self.peak = max(self.peak, tree_bytes(self.root) if self.root.exists() else 0)

    def __enter__(self) -> _DiskSampler:
        def run() -> None:
            while not self._stop.wait(0.05):
                self.sample()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _trainer(config: Config, output: Path, save: str, extra: dict[str, Any] | None = None) -> Any:
    from transformers import Trainer, TrainingArguments

    model, tokenizer = build_model(config)
    train_set, val_set = _datasets(config, tokenizer)
    steps = config.train.max_steps_per_epoch
    arguments: dict[str, Any] = {
        "output_dir": str(output),
        "num_train_epochs": config.train.epochs,
        "max_steps": steps * config.train.epochs if steps else -1,
        "per_device_train_batch_size": config.train.batch_size,
        "per_device_eval_batch_size": config.train.batch_size,
        "learning_rate": config.train.lr_encoder,
        "weight_decay": config.train.weight_decay,
        "warmup_steps": config.train.warmup_ratio,  # transformers 5: a float < 1 is a share of the steps
        "eval_strategy": "steps" if steps else "epoch",
        "eval_steps": steps,
        "save_strategy": ("steps" if steps else "epoch") if save != "no" else "no",
        "save_steps": steps,
        "report_to": [],
        "remove_unused_columns": False,
        "label_names": ["labels"],
        "disable_tqdm": True,
        "seed": config.seed,
        "use_cpu": True,
    }
    return Trainer(
        model=_LossModule(model, config.train.evidence_loss_weight),
        args=TrainingArguments(**(arguments | (extra or {}))),
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=train_set.collate,
    )


def b1_hf_trainer(workdir: Path, trial_overrides: list[dict[str, Any]], base: list[str]) -> dict:
    """The same trials as B1 with the Trainer's ``save_total_limit=2`` + ``load_best_model_at_end``."""
    root = workdir / "b1_hf"
    with _DiskSampler(root) as sampler:
        for i, overrides in enumerate(trial_overrides):
            config = apply_overrides(load_config([*base, f"experiments_dir={root}"], REPO / "configs"), overrides)
            extra = {"save_total_limit": 2, "load_best_model_at_end": True, "metric_for_best_model": "eval_loss"}
            _trainer(config, root / f"trial_{i}", "yes", extra).train()
    kept = tree_bytes(root)
    return {"kept_bytes": kept, "peak_bytes": sampler.peak, "trials": len(trial_overrides)}


def b5_disk_guard(workdir: Path, checks: int = 2000, interval_s: float = 60.0) -> dict:
    """CPU seconds of one free-space check, and that as a share of the default check interval."""
    monitor = DiskMonitor(workdir, Thresholds(0.10, 0.05), interval_s=interval_s)
    started = time.process_time()
    for _ in range(checks):
        monitor.check_now()
    per_check = (time.process_time() - started) / checks
    return {"cpu_s_per_check": per_check, "interval_s": interval_s, "cpu_share": per_check / interval_s}


def _bare_epochs(config: Config) -> list[tuple[float, float]]:
    """The plainest loop on the same model, optimizer, schedule and batches: train, then score validation
    as our loop does. Returns (train seconds, validation seconds) per epoch."""
    runtime = resolve_runtime(config.train)
    model, tokenizer = build_model(config, None, runtime)
    train_set, val_set = _datasets(config, tokenizer)
    optimizer = build_optimizer(model, config.train)
    batches = len(train_set) // config.train.batch_size + bool(len(train_set) % config.train.batch_size)
    scheduler = linear_warmup_decay(optimizer, batches * config.train.epochs, config.train.warmup_ratio)
    seconds = []
    for epoch in range(config.train.epochs):
        started = time.perf_counter()
        model.train()
        batches = epoch_batches(
            train_set.lengths, config.train.batch_size, config.seed, epoch + 1, windows=train_set.window_counts
        )
        loader = DataLoader(train_set, batch_sampler=batches, collate_fn=train_set.collate)
        _bare_steps(model, optimizer, scheduler, loader, config.train.evidence_loss_weight)
        trained = time.perf_counter()
        score(predict(model, val_set, config.train, runtime), val_set, "val")
        seconds.append((trained - started, time.perf_counter() - trained))
    return seconds


def _bare_steps(
    model: torch.nn.Module, optimizer: Any, scheduler: Any, loader: DataLoader[Any], evidence_weight: float
) -> int:
    """The plainest training steps: forward, loss, backward, clipping, step. Returns how many ran."""
    steps = 0
    for batch in loader:
        loss = model.loss(model(batch), batch, evidence_weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
    return steps


@contextlib.contextmanager
def train_epoch_clock() -> Iterator[list[float]]:
    """Seconds of the training part of each epoch ``fit`` runs inside the block."""
    original = loop_module._train_epoch
    seconds: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - begin)

    loop_module._train_epoch = timed
    try:
        yield seconds
    finally:
        loop_module._train_epoch = original


def _timed_fit(config: Config) -> tuple[float, list[float]]:
    """From the start of ``fit`` to the end of the trial's last checkpoint write (every epoch with its
    validation, metric logging, checkpoint snapshots and background writes, retention and disk checks)
    during a real ``redsm5-hpo train`` run, and the training part of each epoch. Set-up, calibration and
    the report are left out, as they are for the other loops."""
    started: list[float] = []
    finished: list[float] = []
    fit, finish = trial_module.fit, CheckpointManager.finish

    def timed_fit(*args: Any, **kwargs: Any) -> Any:
        started.append(time.perf_counter())
        return fit(*args, **kwargs)

    def timed_finish(*args: Any, **kwargs: Any) -> Any:
        result = finish(*args, **kwargs)  # waits for the last background write
        finished.append(time.perf_counter())
        return result

    trial_module.fit, CheckpointManager.finish = timed_fit, timed_finish  # type: ignore[method-assign]
    try:
        with train_epoch_clock() as train_seconds:
            run_single(config, progress=False)
    finally:
        trial_module.fit, CheckpointManager.finish = fit, finish  # type: ignore[method-assign]
    return finished[0] - started[0], train_seconds


class _EpochClock:
    """A Trainer callback: our validation scoring at each epoch end (the work our loop does; the Trainer's
    own evaluation computes only the loss), and how long the training steps of each epoch took."""

    def __init__(self, config: Config, val_set: MultiLabelDataset):
        self.config, self.val_set = config, val_set
        self.runtime = resolve_runtime(config.train)
        self.train_seconds: list[float] = []
        self.validation_seconds: list[float] = []

    def hooks(self) -> Any:
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                clock.began = time.perf_counter()

            def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
                validation = time.perf_counter()
                clock.train_seconds.append(validation - clock.began)
                score(predict(model.model, clock.val_set, clock.config.train, clock.runtime), clock.val_set, "val")
                clock.validation_seconds.append(time.perf_counter() - validation)

        return Callback()


def _timed_trainer(config: Config, output: Path) -> tuple[float, _EpochClock]:
    """The Trainer saving every epoch and scoring validation as our loop does (``_EpochClock``)."""
    trainer = _trainer(config, output, "yes", {"eval_strategy": "no"})
    clock = _EpochClock(config, trainer.eval_dataset)
    trainer.add_callback(clock.hooks())
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started, clock


def b6_overhead(workdir: Path, base: list[str], epochs: int = 2, repetitions: int = 4) -> dict:
    """Like for like: every loop trains on the same model and batches and scores validation with the same
    functions each epoch; ours and the Trainer also save a checkpoint each epoch. The three run in turn,
    in an order that alternates between repetitions, and each repetition gives ratios between runs made
    minutes apart, so a machine whose speed drifts (a shared host) biases no loop."""
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": [], "hf": []}
    ratios: dict[str, list[float]] = {"bare": [], "hf": []}
    for rep in range(repetitions):
        root = workdir / f"b6_{rep}"
        # one input per post: the Trainer batches posts, not windows, so all three read the same batches
        overrides = [*base, "data.long_posts=truncate", f"experiments_dir={root}", f"train.epochs={epochs}"]
        config = load_config(overrides, REPO / "configs")
        measured = {}
        for loop in ("ours", "bare", "hf") if rep % 2 == 0 else ("hf", "bare", "ours"):
            if loop == "ours":
                total, train_seconds = _timed_fit(config)
                measured[loop] = (total / epochs, statistics.mean(train_seconds))
            elif loop == "bare":
                bare_epochs = _bare_epochs(config)
                measured[loop] = (
                    statistics.mean(t + v for t, v in bare_epochs),
                    statistics.mean(t for t, _ in bare_epochs),
                )
            else:
                total, clock = _timed_trainer(config, root / "hf")
                measured[loop] = (total / epochs, statistics.mean(clock.train_seconds))
        for loop, value in measured.items():
            runs[loop].append(value)
        for peer in ratios:
            ratios[peer].append(measured["ours"][0] / measured[peer][0])
    epoch = {loop: statistics.median(e for e, _ in values) for loop, values in runs.items()}
    train = {loop: statistics.median(t for _, t in values) for loop, values in runs.items()}
    return {
        "ours_s_per_epoch": epoch["ours"],
        "bare_pytorch_s_per_epoch": epoch["bare"],
        "hf_trainer_s_per_epoch": epoch["hf"],
        "ours_train_s_per_epoch": train["ours"],
        "bare_pytorch_train_s_per_epoch": train["bare"],
        "hf_trainer_train_s_per_epoch": train["hf"],
        "overhead_vs_bare": statistics.median(ratios["bare"]) - 1,
        "overhead_vs_hf_trainer": statistics.median(ratios["hf"]) - 1,
        "overhead_vs_bare_per_repetition": [r - 1 for r in ratios["bare"]],
        "overhead_vs_hf_trainer_per_repetition": [r - 1 for r in ratios["hf"]],
        "epochs": epochs,
        "repetitions": repetitions,
    }


def epoch_throughput(config: Config, repetitions: int = 2, warmup: int = 0) -> dict[str, Any]:
    """Training throughput of our loop (the training part of an epoch: forward, loss, backward, step) for
    ``config`` on its device and precision (and its ``train.deterministic``: TF32 off, or on), median of
    ``repetitions`` epochs after ``warmup`` epochs that are not counted (a GPU's first epoch pays for kernel
    selection and the allocator's growth); on a CUDA device also the most memory allocated."""
    configure_determinism(config.train.deterministic)
    runtime = resolve_runtime(config.train)
    model, tokenizer = build_model(config, None, runtime)
    train_set, val_set = _datasets(config, tokenizer)
    cuda = runtime.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(runtime.device)
    one_epoch = dataclasses.replace(config.train, epochs=1)
    with train_epoch_clock() as seconds:
        for _ in range(warmup + repetitions):
            loop_module.fit(model, train_set, val_set, one_epoch, config.seed, runtime, FitOptions(progress=False))
    epoch = statistics.median(seconds[warmup:])
    return {
        "examples_per_s": len(train_set) / epoch,
        "tokens_per_s": sum(train_set.lengths) / epoch,
        "epoch_train_s": epoch,
        "max_memory_allocated_bytes": torch.cuda.max_memory_allocated(runtime.device) if cuda else None,
        "device": runtime.name,
        "precision": runtime.precision,
        "tf32": not config.train.deterministic,
        "batch_size": config.train.batch_size,
        "repetitions": repetitions,
        "warmup": warmup,
    }


def b8_throughput(workdir: Path, base: list[str], repetitions: int = 2) -> dict:
    """``epoch_throughput`` in fp32 and in bf16 autocast on this machine."""
    results: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        overrides = [*base, f"experiments_dir={workdir / f'b8_{precision}'}", f"train.precision={precision}"]
        results[precision] = epoch_throughput(load_config(overrides, REPO / "configs"), repetitions)
    results["bf16_speedup"] = results["fp32"]["epoch_train_s"] / results["bf16"]["epoch_train_s"]
    results["device"] = results["fp32"]["device"]
    results["repetitions"] = repetitions
    return results


def b10_step_overhead(workdir: Path, repetitions: int = 12) -> dict[str, Any]:
    """Our epoch's training part (``_train_epoch``: stop check, token count, device transfer, autocast and
    the scaler, the loss kept on the device, step hooks) against the bare loop's, per step, on the same
    batches of the tiny encoder, in CPU time of one torch thread (less noisy than wall time on a shared
    host), alternating which runs first."""
    config = load_config(
        ["model=tiny", "data.long_posts=truncate", "train.batch_size=4", f"experiments_dir={workdir / 'b10'}"],
        REPO / "configs",
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        configure_determinism(config.train.deterministic)
        runtime = resolve_runtime(config.train)
        per_step: dict[str, list[float]] = {"ours": [], "bare": []}
        for rep in range(repetitions):
            for loop in ("ours", "bare") if rep % 2 == 0 else ("bare", "ours"):
                per_step[loop].append(_cpu_seconds_per_step(config, runtime, ours=loop == "ours"))
    finally:
        torch.set_num_threads(threads)
    ours, bare = statistics.median(per_step["ours"]), statistics.median(per_step["bare"])
    return {
        "ours_ms_per_step": ours * 1000,
        "bare_ms_per_step": bare * 1000,
        "overhead_us_per_step": (ours - bare) * 1e6,
        "overhead_vs_bare": ours / bare - 1,
        "ours_ms_per_repetition": [t * 1000 for t in per_step["ours"]],
        "bare_ms_per_repetition": [t * 1000 for t in per_step["bare"]],
        "repetitions": repetitions,
    }


def _cpu_seconds_per_step(config: Config, runtime: Any, ours: bool) -> float:
    model, tokenizer = build_model(config, None, runtime)
    train_set, _ = _datasets(config, tokenizer)
    optimizer = build_optimizer(model, config.train)
    scheduler = linear_warmup_decay(optimizer, 1000, config.train.warmup_ratio)
    if ours:
        state = loop_module.LoopState(model, optimizer, scheduler, runtime.grad_scaler(), runtime.device)
        loader = loop_module.train_loader(train_set, config.train, config.seed, runtime)
        sampler = cast(EpochBatchSampler, loader.batch_sampler)
        sampler.set_epoch(1)
        steps = sampler.count(1)
        started = time.process_time()
        loop_module._train_epoch(state, loader, config.train, runtime, 1, steps, False, [])
        return (time.process_time() - started) / steps
    model.train()
    batches = epoch_batches(train_set.lengths, config.train.batch_size, config.seed, 1, windows=train_set.window_counts)
    loader = DataLoader(train_set, batch_sampler=batches, collate_fn=train_set.collate)
    started = time.process_time()
    steps = _bare_steps(model, optimizer, scheduler, loader, config.train.evidence_loss_weight)
    return (time.process_time() - started) / steps
