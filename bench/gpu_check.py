"""``make gpu-check``: the GPU path on a CUDA machine, in one short script.

1. A 2-trial study with the tiny encoder on the GPU: it completes with finite test metrics, and the
   report names the GPU.
2. One training epoch of the bundled MiniLM (batches of 32) in fp32 with TF32 off (``train.deterministic=
   true``, the default) and on, bf16 and fp16: examples/s, tokens/s and ``torch.cuda.max_memory_allocated``;
   the median of 3 epochs after a first one that is not counted.
3. A checkpoint written on the GPU loads on the CPU (weights and optimizer state mapped there), scores
   what it scored on the GPU (both in fp32, so the difference is the devices' arithmetic alone) and trains
   on; and the other way round.

Writes ``gpu_check.json`` and ``gpu_check.md`` to ``--out`` (default ``bench/`` on a CUDA device);
``make bench`` puts the table into ``bench/results.md``.

Usage: python bench/gpu_check.py [--device cuda:0] [--quick] [--out DIR]
  --device cpu: the same checks on the CPU, to test this script on a machine without a GPU
  --quick: the tiny encoder for step 2 as well
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from redsm5_hpo.checkpoints.disk import human_bytes
from redsm5_hpo.checkpoints.manager import CheckpointManager
from redsm5_hpo.checkpoints.retention import RetentionPolicy
from redsm5_hpo.checkpoints.store import CheckpointStore, load_training_state, load_weights
from redsm5_hpo.config.loading import load_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.devices import DeviceError, resolve_runtime
from redsm5_hpo.evaluation.predict import predict
from redsm5_hpo.pipeline import run_study
from redsm5_hpo.pipeline.builders import build_model, split_datasets
from redsm5_hpo.training.hooks import CheckpointHook
from redsm5_hpo.training.loop import FitOptions, fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import epoch_throughput

REPO = Path(__file__).resolve().parents[1]


def config(device: str, root: Path, *overrides: str) -> Config:
    return load_config([f"train.device={device}", f"experiments_dir={root}", *overrides], REPO / "configs")


def tiny_study(device: str, root: Path) -> dict[str, Any]:
    started = time.perf_counter()
    result = run_study(config(device, root, "model=tiny", "hpo.n_trials=2", "train.epochs=2"), progress=False)
    assert result.report is not None
    metrics = result.report["test_metrics"]
    return {
        "seconds": time.perf_counter() - started,
        "runtime": result.report["runtime"],
        "finite_test_metrics": all(math.isfinite(v) for v in metrics.values()),
        "test_criteria_macro_f1": metrics["test_criteria_macro_f1"],
    }


THROUGHPUT_ROWS = {
    "fp32 (TF32 off)": ("fp32", True),
    "fp32 (TF32 on)": ("fp32", False),
    "bf16": ("bf16", True),
    "fp16": ("fp16", True),
}
"""Row label -> (train.precision, train.deterministic): deterministic runs keep fp32 matmuls in IEEE fp32."""


def throughput(device: str, root: Path, quick: bool) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for label, (precision, deterministic) in THROUGHPUT_ROWS.items():
        setting = ["model=tiny", "train.batch_size=16"] if quick else ["train.batch_size=32"]
        setting += [f"train.precision={precision}", f"train.deterministic={str(deterministic).lower()}"]
        folder = root / re.sub(r"[^a-z0-9]+", "_", label.lower())  # a path Hydra's override grammar accepts
        repetitions, warmup = (1, 0) if quick else (3, 1)
        try:
            rows[label] = epoch_throughput(config(device, folder, *setting), repetitions, warmup)
        except DeviceError as e:  # e.g. bf16 on a GPU older than Ampere
            rows[label] = {"unsupported": e.problems[0]}
    return rows


class OptimizerDevices:
    """A hook: the devices the optimizer's moments live on after each epoch."""

    def __init__(self) -> None:
        self.devices: set[str] = set()

    def on_epoch_end(self, state: Any, result: Any) -> None:
        moments = (t for s in state.optimizer.state.values() for t in s.values() if torch.is_tensor(t) and t.dim())
        self.devices = {str(t.device) for t in moments}


def move_checkpoint(source: str, target: str, root: Path) -> dict[str, Any]:
    """One epoch on ``source`` with a checkpoint; its weights scored on both devices; then the second
    epoch on ``target`` from the checkpoint's training state (optimizer moments mapped to ``target``)."""
    cfg = config(source, root, "model=tiny", "train.epochs=2", "train.max_steps_per_epoch=4", "train.precision=fp32")
    corpus = load_corpus(cfg.data, cfg.seed)
    first = resolve_runtime(cfg.train)
    model, tokenizer = build_model(cfg, corpus, first)
    train_set, val_set = split_datasets(cfg, corpus, tokenizer, "train", "validation")
    manager = CheckpointManager(CheckpointStore(root / "checkpoints"), RetentionPolicy(2, 1), root)
    one_epoch = dataclasses.replace(cfg.train, epochs=1)
    meta = {"architecture": model.architecture_signature(), "runtime": first.describe()}
    hook = CheckpointHook(manager, one_epoch, meta, cfg.seed)
    fit(model, train_set, val_set, one_epoch, cfg.seed, first, FitOptions(hooks=[hook], progress=False))
    (checkpoint,) = manager.finish(release_resume_points=False)
    second = resolve_runtime(cfg.train, device_override=target)
    moved, _ = build_model(cfg, corpus, second)
    load_weights(checkpoint, moved, moved.architecture_signature())
    before = predict(model, val_set, cfg.train, first).probs
    after = predict(moved, val_set, cfg.train, second).probs
    devices = OptimizerDevices()
    resumed = fit(
        moved,
        train_set,
        val_set,
        cfg.train,
        cfg.seed,
        second,
        FitOptions(hooks=[devices], progress=False, resume_from=load_training_state(checkpoint)),
    )
    return {
        "written_on": checkpoint.manifest["runtime"],
        "continued_on": second.describe(),
        "max_probability_difference": float(np.abs(before - after).max()),
        "optimizer_state_on": sorted(devices.devices),
        "finite": all(math.isfinite(v) for h in resumed.history for v in h.values()),
    }


def markdown(results: dict[str, Any]) -> str:
    study, rows = results["tiny_study"], results["throughput"]
    lines = [
        f"GPU check on {results['device_name']} (`make gpu-check`, {results['encoder']}), {results['date']}:",
        "",
        "| check | result |",
        "| --- | --- |",
        f"| 2-trial tiny study on the GPU | {study['seconds']:.0f} s, test macro-F1 "
        f"{study['test_criteria_macro_f1']:.3f}, "
        f"finite metrics: {study['finite_test_metrics']}, evaluated on {study['runtime']['evaluation']['device_name']} "
        f"in {study['runtime']['evaluation']['precision']} |",
    ]
    for precision, row in rows.items():
        if "unsupported" in row:
            lines.append(f"| one training epoch, {precision} | not supported here: {row['unsupported']} |")
            continue
        memory = row["max_memory_allocated_bytes"]
        lines.append(
            f"| one training epoch, {precision}, batches of {row['batch_size']} | {row['examples_per_s']:.1f} "
            f"examples/s, {row['tokens_per_s']:,.0f} tokens/s, {row['epoch_train_s']:.2f} s (median of "
            f"{row['repetitions']} after {row['warmup']} uncounted)"
            + (f", max memory allocated {human_bytes(memory)}" if memory is not None else "")
            + " |"
        )
    for key, label in (
        ("gpu_to_cpu", "written on the GPU, continued on the CPU"),
        ("cpu_to_gpu", "written on the CPU, continued on the GPU"),
    ):
        moved = results[key]
        lines.append(
            f"| checkpoint {label} | weights load, validation probabilities within "
            f"{moved['max_probability_difference']:.1e} ({moved['written_on']['precision']} -> "
            f"{moved['continued_on']['precision']}); optimizer state on {', '.join(moved['optimizer_state_on'])}; "
            f"finite metrics: {moved['finite']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu to test the script without a GPU")
    parser.add_argument("--quick", action="store_true", help="the tiny encoder for the throughput epochs too")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: bench/ on a CUDA device, a temp folder otherwise"
    )
    args = parser.parse_args()
    try:
        runtime = resolve_runtime(load_config([f"train.device={args.device}"], REPO / "configs").train)
    except DeviceError as e:
        print(f"gpu-check needs a CUDA device: {e.problems[0]}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="redsm5-gpu-check-") as tmp:
        root = Path(tmp)
        study = tiny_study(args.device, root / "study")
        results = {
            "device_name": runtime.name,
            "encoder": "tiny-random" if args.quick else "bundled:all-MiniLM-L6-v2",
            "date": time.strftime("%Y-%m-%d"),
            "tiny_study": study,
            "throughput": throughput(args.device, root / "throughput", args.quick),
            "gpu_to_cpu": move_checkpoint(args.device, "cpu", root / "gpu_to_cpu"),
            "cpu_to_gpu": move_checkpoint("cpu", args.device, root / "cpu_to_gpu"),
        }
    out = args.out or (REPO / "bench" if runtime.device.type == "cuda" else Path(tempfile.gettempdir()) / "gpu-check")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(results))
    sys.stdout.write(markdown(results) + f"\nwritten to {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
