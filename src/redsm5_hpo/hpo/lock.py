"""One process per study on a machine: an exclusive ``flock`` on ``<study_dir>/.lock``.

The kernel drops the lock when its process dies, however it dies, so a killed study can always be
resumed, and a second process started on a running study is told so instead of corrupting it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from redsm5_hpo.layout import StudyDir


class StudyLockedError(RuntimeError):
    """Another process is running this study."""


def is_locked(study_dir: Path) -> bool:
    """Whether a process holds the study lock, probed with a shared non-blocking ``flock`` on a read-only
    descriptor (nothing is written)."""
    path = StudyDir(Path(study_dir)).lock_path
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    path = StudyDir(Path(study_dir)).lock_path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8").strip() or "unknown"
            raise StudyLockedError(
                f"study {Path(study_dir).name} is already running (process {holder} holds {path}); nothing was done. "
                f"Wait for it to finish, or stop it and run `{StudyDir(Path(study_dir)).command('resume')}` again."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def claim_lock(study_dir: Path) -> Iterator[None]:
    """Workers sharing the study directory claim trials one at a time: the look for a waiting trial and
    Optuna's ``ask`` happen under an exclusive ``flock`` on ``<study_dir>/.claim.lock``, so two workers do
    not both find the last waiting trial (the one that loses would get a surplus trial). Waits only while
    another worker claims (a storage round trip or two)."""
    fd = os.open(StudyDir(Path(study_dir)).claim_lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
