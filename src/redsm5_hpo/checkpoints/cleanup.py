"""Find and remove orphaned checkpoints and trial directories. Dry run unless asked.

Orphans:
- temp directories of interrupted checkpoint writes and checkpoint directories without a valid manifest;
- checkpoints of a finished trial that its evaluation report does not reference (what study-level
  retention would have released had the process not stopped first);
- trial directories that no study knows and that never wrote a report (a run that died early).
Anything touched within ``min_age_s`` is left alone, so a running trial is never disturbed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from redsm5_hpo.checkpoints.disk import tree_bytes
from redsm5_hpo.checkpoints.store import MANIFEST, TEMP_PREFIX
from redsm5_hpo.layout import CHECKPOINTS, TRIAL_PREFIX, TrialDir, trial_dirs
from redsm5_hpo.remote import Bucket

log = logging.getLogger(__name__)
REPORT = TrialDir(Path(".")).report_path.name


@dataclass(frozen=True)
class Orphan:
    path: Path
    size_bytes: int
    reason: str


def find_orphans(root: Path, trial_states: dict[Path, str], min_age_s: float, now: float | None = None) -> list[Orphan]:
    """Orphans under ``root``. ``trial_states`` maps trial directories known to a study to their state
    (``RUNNING``, ``COMPLETE``, ``FAIL``...)."""
    now = time.time() if now is None else now
    orphans: list[Orphan] = []
    for trial in trial_dirs(root):
        if _newest_mtime(trial.path) > now - min_age_s:
            continue
        state = trial_states.get(trial.path.resolve())
        has_report = trial.report_path.is_file()
        if state is None and not has_report:
            orphans.append(Orphan(trial.path, tree_bytes(trial.path), "no study and no report references this trial"))
            continue
        # by name: a report names its checkpoints by their paths when written, perhaps on another machine
        references = {Path(r).name for r in trial.read_report()["checkpoint_references"]} if has_report else set()
        checkpoints = trial.checkpoints
        for entry in sorted(checkpoints.iterdir()) if checkpoints.is_dir() else []:
            reason = _checkpoint_orphan_reason(entry, state, references)
            if reason:
                orphans.append(Orphan(entry, tree_bytes(entry), reason))
    return orphans


def _checkpoint_orphan_reason(entry: Path, state: str | None, references: set[str]) -> str | None:
    if entry.name.startswith(TEMP_PREFIX):
        return "left by an interrupted checkpoint write"
    if not (entry / MANIFEST).is_file():
        return "checkpoint without a manifest (never loadable)"
    if state in ("RUNNING", "RESUMABLE"):
        return None
    if entry.name not in references:
        return "finished trial; not referenced by its report"
    return None


@dataclass(frozen=True)
class BucketOrphan:
    key: str
    """Relative to the bucket's prefix: ``trial_<id>`` or ``trial_<id>/checkpoints/epoch_NNNN``."""
    size_bytes: int
    reason: str


def find_bucket_orphans(
    bucket: Bucket, trial_states: dict[str, str], min_age_s: float, now: float | None = None
) -> list[BucketOrphan]:
    """The same orphans as ``find_orphans``, in the bucket (``remote.uri``); ``trial_states`` maps trial
    directory names to their state. Anything with an object modified within ``min_age_s`` is left alone."""
    now = time.time() if now is None else now
    orphans: list[BucketOrphan] = []
    for trial in (d for d in bucket.list_dirs("") if d.startswith(TRIAL_PREFIX)):
        objects = bucket.list_details(trial)
        if not objects or max(modified for _, _, modified in objects) > now - min_age_s:
            continue
        state = trial_states.get(trial)
        report = bucket.read_bytes(f"{trial}/{REPORT}")
        if state is None and report is None:
            size = sum(size for _, size, _ in objects)
            orphans.append(BucketOrphan(trial, size, "no study and no report references this trial"))
            continue
        references = {Path(r).name for r in json.loads(report)["checkpoint_references"]} if report else set()
        checkpoints: dict[str, list[tuple[str, int]]] = {}
        for relative, size, _ in objects:
            parts = relative.split("/")
            if len(parts) >= 3 and parts[0] == CHECKPOINTS:
                checkpoints.setdefault(parts[1], []).append((parts[2], size))
        for name, files in sorted(checkpoints.items()):
            reason = _checkpoint_orphan_reason_in_bucket({f for f, _ in files}, name, state, references)
            if reason:
                orphans.append(BucketOrphan(f"{trial}/{CHECKPOINTS}/{name}", sum(s for _, s in files), reason))
    return orphans


def _checkpoint_orphan_reason_in_bucket(
    files: set[str], name: str, state: str | None, references: set[str]
) -> str | None:
    if MANIFEST not in files:
        return "checkpoint without a manifest (an interrupted upload; never loadable)"
    if state in ("RUNNING", "RESUMABLE"):
        return None
    if name not in references:
        return "finished trial; not referenced by its report"
    return None


def remove_bucket_orphans(bucket: Bucket, orphans: list[BucketOrphan]) -> int:
    """Delete them from the bucket; return the bytes freed."""
    for orphan in orphans:
        bucket.remove(orphan.key)
        log.info("removed %s (%s)", bucket.url(orphan.key), orphan.reason)
    return sum(o.size_bytes for o in orphans)


def remove_orphans(orphans: list[Orphan]) -> int:
    """Delete them; return the bytes freed."""
    freed = 0
    for orphan in orphans:
        shutil.rmtree(orphan.path, ignore_errors=True)
        freed += orphan.size_bytes
        log.info("removed %s (%s)", orphan.path, orphan.reason)
    return freed


def _newest_mtime(path: Path) -> float:
    return max((p.stat().st_mtime for p in path.rglob("*")), default=path.stat().st_mtime)
