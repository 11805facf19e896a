"""Free space on the experiments filesystem: pure assessment, size estimates, the disk-full report."""

from __future__ import annotations

import enum
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redsm5_hpo.config.schema import MB
from redsm5_hpo.layout import CHECKPOINTS

if TYPE_CHECKING:  # the command line imports this module before it knows whether torch is needed
    import torch

GB = 1 << 30
CHECKPOINT_OVERHEAD_BYTES = MB
"""Manifest, file-system slack and serialization headers, per checkpoint."""


@dataclass(frozen=True)
class DiskUsage:
    total_bytes: int
    used_bytes: int
    free_bytes: int

    @property
    def free_fraction(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 0.0


class DiskLevel(enum.IntEnum):
    OK = 0
    CRITICAL = 1
    """Below the critical share of free space: WARNING, aggressive pruning before saves."""
    ERROR = 2
    """Below the error share: ERROR."""


@dataclass(frozen=True)
class Thresholds:
    critical_free_fraction: float = 0.10
    error_free_fraction: float = 0.05


def disk_usage(path: Path) -> DiskUsage:
    """Usage of the filesystem holding ``path`` (the nearest existing parent)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    usage = shutil.disk_usage(path)
    return DiskUsage(usage.total, usage.used, usage.free)


def assess(usage: DiskUsage, thresholds: Thresholds) -> DiskLevel:
    fraction = usage.free_fraction
    if fraction < thresholds.error_free_fraction:
        return DiskLevel.ERROR
    if fraction < thresholds.critical_free_fraction:
        return DiskLevel.CRITICAL
    return DiskLevel.OK


def estimate_checkpoint_bytes(model: torch.nn.Module, optimizer_states_per_param: int = 2) -> tuple[int, int]:
    """(full checkpoint, weights only) in bytes: model + AdamW's two moments + 1 MB."""
    weights = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return (
        weights + optimizer_states_per_param * trainable + CHECKPOINT_OVERHEAD_BYTES,
        weights + CHECKPOINT_OVERHEAD_BYTES,
    )


def minimum_bytes_to_run(full_bytes: int, weights_bytes: int, running: int = 1) -> int:
    """The least any policy needs: for each of the ``running`` trials writing to this disk at once (the
    study's workers) its resume point and its next save in flight, plus the study's best (lean)."""
    return 2 * full_bytes * max(1, running) + weights_bytes


def largest_artifacts(root: Path, limit: int = 10) -> list[tuple[Path, int]]:
    """The biggest checkpoint directories and other top-level entries under ``root``, largest first."""
    root = Path(root)
    entries: list[tuple[Path, int]] = []
    if root.is_dir():
        for child in root.iterdir():
            checkpoints = child / CHECKPOINTS
            if checkpoints.is_dir():
                entries += [(c, tree_bytes(c)) for c in checkpoints.iterdir()]
            else:
                entries.append((child, tree_bytes(child)))
    return sorted(entries, key=lambda e: -e[1])[:limit]


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


class DiskSpaceError(RuntimeError):
    """Not enough space to keep a resumable checkpoint plus the best model."""


EXIT_DISK_FULL = 3
"""Exit code of a command (or a study's worker process) stopped by a ``DiskSpaceError``."""


def disk_full_message(root: Path, usage: DiskUsage, needed_bytes: int, reason: str) -> str:
    """The disk-full report: usage, what is needed, the largest artifacts, and commands that fix it."""
    lines = [
        f"not enough disk space under {root}: {reason}",
        f"disk: {human_bytes(usage.used_bytes)} used of {human_bytes(usage.total_bytes)}, "
        f"{human_bytes(usage.free_bytes)} free ({usage.free_fraction:.1%})",
        f"needed for the next checkpoint: {human_bytes(needed_bytes)}",
        "largest artifacts:",
        *[f"  {human_bytes(size):>10}  {path}" for path, size in largest_artifacts(root)],
        "to fix it, then run again:",
        f"  redsm5-hpo cleanup experiments_dir={root}            # list orphaned checkpoints and logs",
        f"  redsm5-hpo cleanup experiments_dir={root} --execute  # delete them (or: make cleanup EXECUTE=true)",
        "  retention_policy=aggressive                 # keep one resume point and one best checkpoint",
        "  train.checkpoint_interval_epochs=2          # save less often",
        "  experiments_dir=/path/on/a/bigger/disk      # move the study",
        "All metrics logged so far are in the tracking store.",
    ]
    return "\n".join(lines)
