"""Find and remove orphaned checkpoints and trial directories (M-31). Dry run unless asked.

Orphans:
- temp directories of interrupted checkpoint writes and checkpoint directories without a valid manifest;
- checkpoints of a finished trial that its evaluation report does not reference (what study-level
  retention would have released had the process not stopped first);
- trial directories that no study knows and that never wrote a report (a run that died early).
Anything touched within ``min_age_s`` is left alone, so a running trial is never disturbed.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from redsm5_hpo.checkpoints.disk import tree_bytes
from redsm5_hpo.checkpoints.store import MANIFEST, TEMP_PREFIX
from redsm5_hpo.layout import trial_dirs

log = logging.getLogger(__name__)


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
        references = set(trial.read_report()["checkpoint_references"]) if has_report else set()
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
    if str(entry.resolve()) not in references:
        return "finished trial; not referenced by its report"
    return None


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
