"""Which checkpoints to keep: a pure decision over records, no file access."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckpointRecord:
    epoch: int
    objective: float
    """The optimization metric at this checkpoint (higher is better)."""


def select_checkpoints_to_keep(records: Sequence[CheckpointRecord], keep_last_n: int, keep_best_k: int) -> set[int]:
    """Epochs to keep: the ``keep_last_n`` newest, the ``keep_best_k`` best, and every checkpoint tied
    with the best (co-best), even past ``keep_best_k``. Never empty when ``records`` is not."""
    if not records:
        return set()
    by_epoch = sorted(records, key=lambda r: r.epoch)
    keep = {r.epoch for r in by_epoch[-max(keep_last_n, 1) :]}
    best = max(r.objective for r in records)
    keep |= {r.epoch for r in records if r.objective == best}
    ranked = sorted(records, key=lambda r: (-r.objective, -r.epoch))
    keep |= {r.epoch for r in ranked[:keep_best_k]}
    return keep
