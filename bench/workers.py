"""B9 parallel workers on one machine (``hpo.n_workers``).

- Wall-clock of a tiny-encoder study of 6 trials run by the CLI (process start to exit, report
  included) with 2 workers and with 1, in one run, and their ratio: with 3 epochs per trial (a trial's
  fixed costs, model build and calibration, weigh most) and with 8.
- B1's study (4 trials x 3 epochs of 4 steps, the same encoder and objective) with 2 workers: the most
  checkpoint bytes on disk at once, sampled every 50 ms from outside the worker processes, against the
  bound of 2 running trials x (resume point + one write in flight + the trial's best) + the study's best.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from peers import _DiskSampler

from redsm5_hpo.checkpoints.disk import tree_bytes

REPO = Path(__file__).resolve().parents[1]
TINY_STUDY = [
    "model=tiny",
    "train.batch_size=16",
    "hpo.n_trials=6",
    "train.optimization_metric=val_criteria_macro_pr_auc",
]


def checkpoint_sizes(root: Path) -> list[int]:
    """The size of each checkpoint (committed or being written) under ``root`` now."""
    sizes = []
    for directory in root.glob("trial_*/checkpoints/*"):
        with contextlib.suppress(FileNotFoundError):  # released or rotated away while it was summed
            sizes.append(tree_bytes(directory))
    return sizes


class CheckpointSampler(_DiskSampler):
    """The most checkpoint bytes under ``root`` while the block runs, and the largest checkpoint (a full,
    resumable one), sampled every 50 ms."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.largest = 0

    def sample(self) -> None:
        sizes = checkpoint_sizes(self.root)
        self.peak = max(self.peak, sum(sizes))
        self.largest = max([self.largest, *sizes])


def tune(root: Path, overrides: list[str]) -> float:
    """Seconds the CLI study took, process start to exit."""
    command = [sys.executable, "-m", "redsm5_hpo", "tune", *overrides, f"experiments_dir={root}"]
    command += ["--config-dir", str(REPO / "configs"), "--no-progress"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def b9_workers(workdir: Path, encoder: list[str]) -> dict:
    wall_clock = {}
    for epochs in (3, 8):
        study = [*TINY_STUDY, f"train.epochs={epochs}"]
        one = tune(workdir / f"b9_one_{epochs}", study)
        two = tune(workdir / f"b9_two_{epochs}", [*study, "hpo.n_workers=2"])
        wall_clock[str(epochs)] = {"one_worker_s": one, "two_workers_s": two, "speedup": one / two}
    root = workdir / "b9_peak"
    base = [*encoder, "train.epochs=3", "train.max_steps_per_epoch=4", "hpo.n_trials=4", "hpo.n_workers=2"]
    with CheckpointSampler(root) as sampler:
        tune(root, [*base, "train.optimization_metric=val_criteria_macro_pr_auc"])
    weights = min(tree_bytes(p) for p in root.glob("trial_*/checkpoints/epoch_*"))  # the study's best, lean
    full = sampler.largest
    bound = 2 * (2 * full + weights) + weights
    return {
        "n_trials": 6,
        "wall_clock_by_epochs": wall_clock,
        "cpus": os.cpu_count(),
        "peak_bytes_two_workers": sampler.peak,
        "peak_bound_bytes_two_workers": bound,
        "peak_within_bound": sampler.peak <= bound,
        "full_checkpoint_bytes": full,
        "weights_bytes": weights,
    }
