"""One trial's checkpoints: preflight, space checks before each save, background writes, retention after
each write.

A save blocks the training thread only while the previous write (if still running) finishes and while the
state is copied into CPU memory (``snapshot.py``); the background writer (``writer.py``) then writes,
hashes, fsyncs and commits the checkpoint and applies retention. At most one write is in flight. A write
that fails (a full disk) is raised in the training thread after its next optimizer step, at the next save,
or at ``finish``/``close``.

Under disk pressure (free space below the critical share, or not enough for the next save) the
manager escalates in three stages before saving: (1) prune every unprotected checkpoint of
this trial, (2) make later trials aggressive, (3) keep only the single best checkpoint of the whole
study. If the save still cannot fit, it raises ``DiskSpaceError`` with the disk-full report (what is
used, what is needed, the largest artifacts, and commands that fix it).

With a bucket (the store's ``mirror``) the writer also uploads every committed checkpoint after retention
(objects, then the manifest) and evicts local copies that are in the bucket past the cache budget, keeping
the running trial's resume point. While the bucket is unreachable, checkpoints stay on the local disk (the
disk guard counts them) and the next save uploads them; ``close`` gives the newest checkpoint up to
``flush_timeout_s`` to reach the bucket (a preempted machine's last chance).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import time
from pathlib import Path
from typing import Any, Protocol

import torch

from redsm5_hpo.checkpoints.cache import evict
from redsm5_hpo.checkpoints.disk import (
    CHECKPOINT_OVERHEAD_BYTES,
    DiskLevel,
    DiskSpaceError,
    disk_full_message,
    disk_usage,
    estimate_checkpoint_bytes,
    human_bytes,
    minimum_bytes_to_run,
)
from redsm5_hpo.checkpoints.loading import newest_resumable_first
from redsm5_hpo.checkpoints.mirror import in_bucket
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.checkpoints.retention import AGGRESSIVE, RetentionPolicy, plan_retention
from redsm5_hpo.checkpoints.snapshot import Snapshot, SnapshotBuffers
from redsm5_hpo.checkpoints.store import CheckpointStore, StoredCheckpoint
from redsm5_hpo.checkpoints.writer import BackgroundWriter
from redsm5_hpo.errors import FILES_ONLY, first_line

log = logging.getLogger(__name__)


class StudyCheckpointsProtocol(Protocol):
    """What a trial may ask of the study when its disk is under pressure."""

    def escalate(self) -> None: ...

    def running_trials(self) -> int:
        """Trials of the study running now, this one included (each writes checkpoints to the disk)."""
        ...

    def keep_only_study_best(self) -> int: ...

    def reclaimable_bytes(self) -> int: ...

    def must_beat(self, position: int | None) -> tuple[float, bool] | None:
        """The best objective among finished trials turned so that higher is better (as
        ``CheckpointRecord.score``), and whether a trial at logical ``position`` wins a tie with the trial
        holding it; None before any trial finished."""
        ...


class CheckpointManager:
    def __init__(
        self,
        store: CheckpointStore,
        policy: RetentionPolicy,
        root: Path,
        monitor: DiskMonitor | None = None,
        reserve_bytes: int = 0,
        study: StudyCheckpointsProtocol | None = None,
        position: int | None = None,
        cache_bytes: int = 0,
        flush_timeout_s: float = 60.0,
    ):
        self.store = store
        self.policy = policy
        self.root = Path(root)
        """The experiments directory: where free space is measured and artifacts are listed."""
        self.monitor = monitor
        self.reserve_bytes = reserve_bytes
        self.study = study
        self.position = position
        """The trial's logical position in the study (its queue slot): it breaks ties with other trials."""
        self.full_bytes = 0
        self.bytes_written = 0
        """Every byte this manager ever saved: what keep-all would hold."""
        self.cache_bytes = cache_bytes
        """With a bucket: the local cache budget (``remote.cache_max_mb``)."""
        self.flush_timeout_s = flush_timeout_s
        self.writer = BackgroundWriter()
        self.buffers = SnapshotBuffers()

    def start(self, model: torch.nn.Module) -> None:
        """Clean up interrupted writes, then stop before training if no policy could make this run fit."""
        self.store.remove_incomplete()
        full, weights = estimate_checkpoint_bytes(model)
        self.full_bytes = full
        running = self.study.running_trials() if self.study else 1
        needed = minimum_bytes_to_run(full, weights, running) + self.reserve_bytes
        usage = disk_usage(self.root)
        reclaimable = sum(c.size_bytes for c in self.store.list() if c.path.is_dir()) + (
            self.study.reclaimable_bytes() if self.study else 0
        )
        log.info(
            "preflight: checkpoint ~%s (weights %s); this run needs at least %s, %s free, %s reclaimable",
            human_bytes(full),
            human_bytes(weights),
            human_bytes(needed),
            human_bytes(usage.free_bytes),
            human_bytes(reclaimable),
        )
        if self.store.mirror is not None:
            log.info(
                "checkpoints go to %s; this disk keeps at most %s of them (remote.cache_max_mb) plus the resume "
                "point and one write in flight",
                self.store.mirror.url(),
                human_bytes(self.cache_bytes),
            )
        if usage.free_bytes + reclaimable < needed:
            message = disk_full_message(self.root, usage, full, "the run cannot fit even after aggressive pruning")
            log.critical(message, extra=FILES_ONLY)  # the command line prints it
            raise DiskSpaceError(message)

    def save(self, model: torch.nn.Module, training_state: dict[str, Any] | None, meta: dict[str, Any]) -> None:
        """Wait for the previous write, check space (escalating if needed), snapshot the model and
        ``training_state`` (None: weights only, not resumable) into CPU memory and hand them to the
        background writer. Returns once the snapshot is taken; the loop may change the live state from
        then on."""
        self.writer.wait()
        self._ensure_space(self.full_bytes or estimate_checkpoint_bytes(model)[0])
        snapshot = self.buffers.snapshot(model.state_dict(), training_state)
        must_beat = self._study_best()
        self.writer.submit(lambda: self._write(snapshot, meta, must_beat))

    def wait(self) -> None:
        """Until the write in flight is committed and retention applied; raises its error."""
        self.writer.wait()

    def raise_if_failed(self) -> None:
        """Raise the error of a background write that failed (a full disk); cheap, called every step."""
        self.writer.raise_if_failed()

    def close(self) -> None:
        """Let a write in flight finish (a trial that stops for another reason keeps its newest checkpoint);
        its error is logged, not raised. With a bucket, the newest checkpoint gets ``flush_timeout_s`` to
        reach it, and the log says which checkpoint any machine can continue from."""
        if self.store.mirror is None:
            try:
                self.writer.wait()
            except Exception as e:
                log.error("the last checkpoint write failed: %s", first_line(e))
            return
        deadline = time.monotonic() + self.flush_timeout_s
        try:
            done = self.writer.wait_for(self.flush_timeout_s)
            if done:
                self.writer.submit(self.store.sync)
                done = self.writer.wait_for(max(0.0, deadline - time.monotonic()))
        except Exception as e:
            log.error("the last checkpoint write or upload failed: %s", first_line(e))
            return
        self._report_flush(done)

    def _report_flush(self, done: bool) -> None:
        local = [c for c in self.store.list() if c.path.is_dir()]
        waiting = [c for c in local if not in_bucket(c.path, c.manifest)]
        newest = newest_resumable_first(self.store.list())
        mirror = self.store.mirror
        assert mirror is not None
        if not done or waiting:
            log.warning(
                "%d checkpoint(s) did not reach the bucket within remote.flush_timeout_s=%.0f: %s; they stay on this "
                "disk and are uploaded when a trial of this study runs here again",
                len(waiting) or 1,
                self.flush_timeout_s,
                ", ".join(str(c.path) for c in waiting) or "the write in flight",
            )
        elif newest:
            log.info("newest resume point in the bucket: %s", mirror.url(newest[0].path.name))

    def _write(
        self, snapshot: Snapshot, meta: dict[str, Any], must_beat: tuple[float, bool] | None
    ) -> StoredCheckpoint:
        """In the writer thread: write and commit, then apply retention."""
        if self.monitor:
            self.monitor.in_flight_bytes = snapshot.nbytes
        try:
            saved = self.store.write(snapshot.weights, snapshot.training_state, meta)
        except Exception as e:
            if not _is_disk_full(e):
                raise
            message = disk_full_message(
                self.root, disk_usage(self.root), self.full_bytes, f"the disk filled up while saving ({e})"
            )
            log.critical(message, extra=FILES_ONLY)  # the command line prints it
            raise DiskSpaceError(message) from e
        finally:
            if self.monitor:
                self.monitor.in_flight_bytes = 0
        log.info("saved checkpoint %s (%s)", saved.path, human_bytes(saved.size_bytes))
        self.full_bytes = saved.size_bytes + CHECKPOINT_OVERHEAD_BYTES
        self.bytes_written += saved.size_bytes
        kept = self._apply(self.policy, False, must_beat)
        self._mirror(kept, keep_resume_point=True)
        return saved

    def _mirror(self, kept: list[StoredCheckpoint], keep_resume_point: bool) -> None:
        """With a bucket: upload what it lacks, then evict local copies past the cache budget."""
        if self.store.mirror is None:
            return
        self.store.sync()
        resume_point = newest_resumable_first(kept)[:1] if keep_resume_point else []
        evict(self.root, self.cache_bytes, [c.path for c in resume_point])

    def apply(self, policy: RetentionPolicy | None = None, trial_finished: bool = False) -> list[StoredCheckpoint]:
        """Delete, slim and flag checkpoints as ``policy`` (default: the trial's) decides; return what is kept."""
        return self._apply(policy or self.policy, trial_finished, self._study_best())

    def _apply(
        self, policy: RetentionPolicy, trial_finished: bool, must_beat: tuple[float, bool] | None
    ) -> list[StoredCheckpoint]:
        """``must_beat``: the best score among the study's finished trials and whether this trial wins a
        tie with it, if any trial finished."""
        checkpoints = self.store.list()
        best, tie_wins = must_beat or (None, False)
        plan = plan_retention([c.record for c in checkpoints], policy, trial_finished, best, tie_wins)
        kept = []
        for checkpoint in checkpoints:
            if checkpoint.epoch in plan.delete:
                self.store.delete(checkpoint)
                log.info("pruned checkpoint %s", checkpoint.path)
                continue
            if checkpoint.epoch in plan.make_lean:
                checkpoint = self.store.make_lean(checkpoint)
                log.info("kept %s as best (weights only)", checkpoint.path)
            kept.append(self.store.write_flags(checkpoint, plan.flags[checkpoint.epoch]))
        return kept

    def finish(self, release_resume_points: bool) -> list[StoredCheckpoint]:
        """At the end of the trial, once the last write is committed: with ``release_resume_points`` only
        the best and co-best stay."""
        self.writer.wait()
        kept = self.apply(trial_finished=release_resume_points)
        self._mirror(kept, keep_resume_point=not release_resume_points)
        return kept

    def _study_best(self) -> tuple[float, bool] | None:
        return self.study.must_beat(self.position) if self.study else None

    def _ensure_space(self, needed: int) -> None:
        usage = disk_usage(self.root)
        critical = self.monitor is not None and self.monitor.check_now() >= DiskLevel.CRITICAL
        if not critical and usage.free_bytes - self.reserve_bytes >= needed:
            return
        log.warning(
            "disk pressure before saving (%s free, %s needed): pruning this trial, then later trials, then the study",
            human_bytes(usage.free_bytes),
            human_bytes(needed),
        )
        self.apply(dataclasses.replace(AGGRESSIVE, max_total_bytes=self.policy.max_total_bytes))
        if self.study:
            self.study.escalate()
            freed = self.study.keep_only_study_best()
            log.warning("kept only the study's best checkpoint elsewhere: %s freed", human_bytes(freed))
        usage = disk_usage(self.root)
        if usage.free_bytes - self.reserve_bytes < needed:
            message = disk_full_message(
                self.root, usage, needed, "cannot keep a resumable checkpoint plus the best model"
            )
            log.critical(message, extra=FILES_ONLY)  # the command line prints it
            raise DiskSpaceError(message)


def _is_disk_full(error: BaseException) -> bool:
    """ENOSPC/EDQUOT, also when a writer (safetensors) wraps it in its own exception type."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(error) or "Disk quota exceeded" in str(error)
