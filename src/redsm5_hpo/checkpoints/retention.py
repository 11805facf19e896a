"""Which checkpoints to keep, slim or delete: pure decisions over records, no file access.

Invariants, whatever the policy: the newest resumable checkpoint (the resume point) and every
checkpoint tied for best (co-best) survive. Within that, ``keep_last_n`` newest stay resumable,
``keep_best_k`` best stay (as weights only when ``lean_best``), and ``max_total_bytes`` caps the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redsm5_hpo.config.schema import MB, RetentionConfig


@dataclass(frozen=True)
class CheckpointRecord:
    epoch: int
    score: float
    """The optimization metric at this checkpoint, turned so that higher is better (a minimized metric is
    negated)."""
    size_bytes: int = 0
    """Bytes on disk now."""
    weights_bytes: int = 0
    """Bytes it would take as weights only (lean)."""
    resumable: bool = True
    """Still holds the optimizer/scheduler state needed to resume from it."""


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last_n: int = 1
    keep_best_k: int = 1
    max_total_bytes: int | None = None
    lean_best: bool = True


AGGRESSIVE = RetentionPolicy(keep_last_n=0, keep_best_k=1, lean_best=True)
"""What the disk guard switches to under pressure."""


@dataclass(frozen=True)
class Flags:
    retained: bool
    co_best: bool
    is_last_n: bool
    is_best_k: bool


@dataclass(frozen=True)
class RetentionPlan:
    keep: frozenset[int]
    make_lean: frozenset[int]
    """Kept, but only as weights: their training state can go."""
    delete: frozenset[int]
    flags: dict[int, Flags]


def plan_retention(
    records: Sequence[CheckpointRecord],
    policy: RetentionPolicy,
    trial_finished: bool = False,
    must_beat: float | None = None,
    tie_wins: bool = False,
) -> RetentionPlan:
    """Decide the fate of every checkpoint of one trial. Once the trial has finished nothing will resume
    from it, so only its best and co-best checkpoints are kept. ``must_beat`` is the study's best score so
    far (higher is better, as ``CheckpointRecord.score``): a checkpoint that does not beat it can never be
    the study's best, so it is kept only as a resume point. ``tie_wins``: this trial comes before the one
    holding that best (in logical position), so a checkpoint that ties it would be the study's best."""
    if not records:
        return RetentionPlan(frozenset(), frozenset(), frozenset(), {})
    by_epoch = sorted(records, key=lambda r: r.epoch)
    resumable = [r for r in by_epoch if r.resumable]
    resume_point = {resumable[-1].epoch} if resumable and not trial_finished else set()
    last_n = {r.epoch for r in resumable[-policy.keep_last_n :]} if policy.keep_last_n and not trial_finished else set()
    last_n |= resume_point
    best = max(r.score for r in records)
    co_best = {r.epoch for r in records if r.score == best}
    ranked = sorted(records, key=lambda r: (-r.score, -r.epoch))
    best_k = {r.epoch for r in ranked[: policy.keep_best_k]}
    if must_beat is not None:

        def beats(score: float) -> bool:
            return score > must_beat or (tie_wins and score == must_beat)

        best_k = {e for e in best_k if beats(_record(records, e).score)}
        co_best = co_best if beats(best) else set()
    keep = last_n | best_k | co_best
    lean = {e for e in keep - last_n if policy.lean_best}
    keep = _apply_size_cap(by_epoch, keep, lean, protected=resume_point | co_best, cap=policy.max_total_bytes)
    lean &= keep
    flags = {
        r.epoch: Flags(r.epoch in keep, r.epoch in co_best, r.epoch in last_n & keep, r.epoch in best_k & keep)
        for r in records
    }
    make_lean = frozenset(e for e in lean if _record(records, e).resumable)
    return RetentionPlan(frozenset(keep), make_lean, frozenset({r.epoch for r in records} - keep), flags)


def select_checkpoints_to_keep(records: Sequence[CheckpointRecord], policy: RetentionPolicy) -> set[int]:
    """Epochs that survive ``policy``."""
    return set(plan_retention(records, policy).keep)


def _apply_size_cap(
    by_epoch: list[CheckpointRecord], keep: set[int], lean: set[int], protected: set[int], cap: int | None
) -> set[int]:
    """Drop unprotected checkpoints until the kept bytes fit ``cap``: oldest resume points first, then the
    weakest best-only ones."""
    if cap is None:
        return keep

    def size(r: CheckpointRecord) -> int:
        return r.weights_bytes if r.epoch in lean and r.weights_bytes else r.size_bytes

    total = sum(size(r) for r in by_epoch if r.epoch in keep)
    droppable = [r for r in by_epoch if r.epoch in keep - protected and r.epoch not in lean]
    droppable += sorted((r for r in by_epoch if r.epoch in (keep & lean) - protected), key=lambda r: r.score)
    kept = set(keep)
    for record in droppable:
        if total <= cap:
            break
        kept.discard(record.epoch)
        total -= size(record)
    return kept


def _record(records: Sequence[CheckpointRecord], epoch: int) -> CheckpointRecord:
    return next(r for r in records if r.epoch == epoch)


def policy_from_config(config: RetentionConfig) -> RetentionPolicy:
    return RetentionPolicy(config.keep_last_n, config.keep_best_k, int(config.max_total_size_mb * MB), config.lean_best)
