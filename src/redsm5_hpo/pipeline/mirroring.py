"""A study's small files in the bucket (``remote.uri``), so that any machine reaching the bucket can resume,
report, verify, predict and export from an empty experiments directory.

Published: everything under ``study_<id>/`` and ``trial_<id>/`` but checkpoints (``checkpoints.store``
mirrors those) and the lock files; the study's SQLite storage as a consistent snapshot (SQLite's backup
API). ``study.json`` and a trial's ``config.yaml`` go up with their secrets masked (``mask_secrets``): a
machine that joins passes its own ``hpo.storage``, as every machine of a shared study does. A file is
uploaded again only when it changed since this process last published it. Pulled: the
files a machine lacks, never over a local one; a trial's logs stay in the bucket.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import tempfile
from pathlib import Path

from redsm5_hpo.errors import first_line
from redsm5_hpo.layout import CHECKPOINTS, LOGS, STUDY_PREFIX, TRIAL_PREFIX
from redsm5_hpo.remote import Bucket, BucketUnavailable
from redsm5_hpo.tracking.sanitize import mask_secrets

log = logging.getLogger(__name__)

LOCKS = frozenset({".lock", ".claim.lock", ".report_claim"})
SQLITE = "optuna.db"
SECRET_BEARING = frozenset({"study.json", "config.yaml"})
"""Files that hold the configuration as given, a database password in ``hpo.storage`` included."""
_published: dict[Path, tuple[int, int]] = {}
"""What this process uploaded last, by file: (size, mtime_ns)."""


def publish(bucket: Bucket | None, root: Path, *directories: Path) -> bool:
    """Upload the files of ``directories`` (study or trial directories under ``root``) that changed; False
    when the bucket is unreachable (the next publication uploads them)."""
    if bucket is None:
        return True
    try:
        for directory in directories:
            for path in sorted(Path(directory).rglob("*")):
                relative = path.relative_to(root)
                if path.is_file() and not _private(relative) and _changed(path):
                    _upload(bucket, path, relative.as_posix())
    except (BucketUnavailable, FileNotFoundError) as e:
        log.warning("bucket: the study's files wait for the next upload (%s)", first_line(e))
        return False
    return True


def pull(bucket: Bucket, root: Path, study_name: str | None) -> str | None:
    """The study ``study_name`` (a directory name; None: the only study in the bucket) and the trials' files
    it needs, downloaded where missing under ``root``; returns the study's directory name, or None when
    the bucket holds no such study."""
    studies = [d for d in bucket.list_dirs("") if d.startswith(STUDY_PREFIX) or d == study_name]
    if study_name is None:
        if len(studies) != 1:
            return None
        study_name = studies[0]
    if study_name not in studies:
        return None
    listed: dict[str, list[str]] = {}  # one listing of the whole prefix, not one per trial
    for key in bucket.list_files(""):
        top, _, relative = key.partition("/")
        listed.setdefault(top, []).append(relative)
    count = _download_missing(bucket, root, study_name, listed.get(study_name, []), skip_logs=False)
    for trial in (d for d in listed if d.startswith(TRIAL_PREFIX)):
        count += _download_missing(bucket, root, trial, listed[trial], skip_logs=True)
    if count:
        log.info("pulled study %s from %s (%d file(s) this machine lacked)", study_name, bucket.url(), count)
    return study_name


def pull_trial(bucket: Bucket | None, trial_dir: Path) -> None:
    """A trial's configuration and report when another machine ran it (its checkpoints come on load)."""
    if bucket is not None:
        name = trial_dir.name
        _download_missing(bucket, trial_dir.parent, name, bucket.list_files(name), skip_logs=True)


def _download_missing(bucket: Bucket, root: Path, name: str, relatives: list[str], skip_logs: bool) -> int:
    """The files ``relatives`` (under ``name``) that this machine lacks, but checkpoints (and logs)."""
    count = 0
    for relative in relatives:
        parts = Path(relative).parts
        if CHECKPOINTS in parts or (skip_logs and LOGS in parts):
            continue
        local = root / name / relative
        if not local.exists():
            bucket.get_file(f"{name}/{relative}", local)
            count += 1
    return count


def _private(relative: Path) -> bool:
    return CHECKPOINTS in relative.parts or relative.name in LOCKS or relative.name.startswith(".tmp")


def _changed(path: Path) -> bool:
    stat = path.stat()
    return _published.get(path) != (stat.st_size, stat.st_mtime_ns)


def _upload(bucket: Bucket, path: Path, key: str) -> None:
    stat = path.stat()
    if path.name in SECRET_BEARING:  # resume reads them with secrets in clear; the bucket gets them masked
        bucket.put_bytes(mask_secrets(path.read_text(encoding="utf-8")).encode(), key)
    elif path.name == SQLITE:  # a live database: copy it consistently first
        with tempfile.TemporaryDirectory() as temp:
            snapshot = Path(temp) / SQLITE
            with (
                contextlib.closing(sqlite3.connect(path)) as source,
                contextlib.closing(sqlite3.connect(snapshot)) as target,
            ):
                source.backup(target)
            bucket.put_file(snapshot, key)
    else:
        bucket.put_file(path, key)
    _published[path] = (stat.st_size, stat.st_mtime_ns)
