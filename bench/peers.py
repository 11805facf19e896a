"""Side by side with the peers on the same encoder, data and epochs:

B1 (HF): the Hugging Face Trainer's usual storage recipe, ``save_total_limit=2`` +
    ``load_best_model_at_end=True``, for the same trials B1 runs: bytes kept at the end and the most
    ever on disk (sampled every 50 ms and after every save).
B5: CPU time of the disk guard's checks as a share of the interval it runs at.
B6: epoch time (train + validation) of our full loop (tracking, checkpoints, disk guard) vs a bare
    PyTorch loop vs the Trainer (saving each epoch), on the same model and batches.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from redsm5_hpo.checkpoints.disk import Thresholds, tree_bytes
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.config.loading import apply_overrides, load_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.evaluation.predict import predict
from redsm5_hpo.models.losses import total_loss
from redsm5_hpo.pipeline import run_single
from redsm5_hpo.pipeline import trial as trial_module
from redsm5_hpo.pipeline.parts import build_model, split_datasets
from redsm5_hpo.training.optim import build_optimizer, linear_warmup_decay

REPO = Path(__file__).resolve().parents[1]


class _LossModule(torch.nn.Module):
    """Our model as the Trainer wants it: keyword batch in, ``{"loss": ...}`` out."""

    def __init__(self, model: torch.nn.Module, evidence_weight: float):
        super().__init__()
        self.model = model
        self.evidence_weight = evidence_weight

    def forward(self, **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": total_loss(self.model, self.model(batch), batch, self.evidence_weight)}


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
    args = TrainingArguments(
        output_dir=str(output),
        num_train_epochs=config.train.epochs,
        max_steps=steps * config.train.epochs if steps else -1,
        per_device_train_batch_size=config.train.batch_size,
        per_device_eval_batch_size=config.train.batch_size,
        learning_rate=config.train.lr_encoder,
        weight_decay=config.train.weight_decay,
        warmup_steps=config.train.warmup_ratio,  # transformers 5: a float < 1 is a share of the steps
        eval_strategy="steps" if steps else "epoch",
        eval_steps=steps,
        save_strategy=("steps" if steps else "epoch") if save != "no" else "no",
        save_steps=steps,
        report_to=[],
        remove_unused_columns=False,
        label_names=["labels"],
        disable_tqdm=True,
        seed=config.seed,
        use_cpu=True,
        **(extra or {}),
    )
    return Trainer(
        model=_LossModule(model, config.train.evidence_loss_weight),
        args=args,
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


def _bare_epochs(config: Config) -> list[float]:
    """The plainest loop on the same model, optimizer, schedule and batches: train, then validate."""
    model, tokenizer = build_model(config)
    train_set, val_set = _datasets(config, tokenizer)
    optimizer = build_optimizer(model, config.train)
    batches = len(train_set) // config.train.batch_size + bool(len(train_set) % config.train.batch_size)
    scheduler = linear_warmup_decay(optimizer, batches * config.train.epochs, config.train.warmup_ratio)
    seconds = []
    for epoch in range(config.train.epochs):
        started = time.perf_counter()
        model.train()
        generator = torch.Generator().manual_seed(config.seed + epoch)
        loader = DataLoader(
            train_set, config.train.batch_size, shuffle=True, generator=generator, collate_fn=train_set.collate
        )
        for batch in loader:
            loss = total_loss(model, model(batch), batch, config.train.evidence_loss_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        predict(model, val_set, config.train)
        seconds.append(time.perf_counter() - started)
    return seconds


def _timed_fit(config: Config) -> float:
    """Seconds inside ``fit`` (every epoch with its validation, metric logging, checkpoint save, retention
    and disk checks) during a real ``redsm5-hpo train`` run; set-up and the final report are left out, as
    they are for the bare loop."""
    seconds: list[float] = []
    original = trial_module.fit

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    trial_module.fit = timed
    try:
        run_single(config, progress=False)
    finally:
        trial_module.fit = original
    return seconds[0]


def b6_overhead(workdir: Path, base: list[str], epochs: int = 2, repetitions: int = 2) -> dict:
    ours, bare, hf = [], [], []
    for rep in range(repetitions):
        root = workdir / f"b6_{rep}"
        config = load_config([*base, f"experiments_dir={root}", f"train.epochs={epochs}"], REPO / "configs")
        ours.append(_timed_fit(config) / epochs)
        bare.append(statistics.mean(_bare_epochs(config)))
        started = time.perf_counter()
        _trainer(config, root / "hf", "yes").train()
        hf.append((time.perf_counter() - started) / epochs)
    o, b, h = (statistics.median(x) for x in (ours, bare, hf))
    return {
        "ours_s_per_epoch": o,
        "bare_pytorch_s_per_epoch": b,
        "hf_trainer_s_per_epoch": h,
        "overhead_vs_bare": o / b - 1,
        "overhead_vs_hf_trainer": o / h - 1,
        "epochs": epochs,
        "repetitions": repetitions,
    }
