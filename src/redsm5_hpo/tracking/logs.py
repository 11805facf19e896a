"""Logging: JSON lines for machines, short readable lines on stdout for people.

Every JSON record has timestamp, severity, message, component, trial_id and step. Secrets are masked
on both outputs (``sanitize.py``); post text is never logged, only ids and counts. The trial id
comes from a context variable that the study sets around each trial.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from redsm5_hpo.config.schema import MB, LogsConfig
from redsm5_hpo.tracking.sanitize import SecretMaskingFilter

current_trial_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_trial_id", default=None)
ROOT = "redsm5_hpo"
TRACEBACK = "traceback"
"""A record's attribute (``extra={TRACEBACK: ...}``) that only the JSON files show: a failure's whole
traceback, kept off the terminal."""


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "severity": record.levelname,
            "message": record.getMessage(),
            "component": record.name.removeprefix(ROOT + "."),
            "trial_id": current_trial_id.get(),
            "step": getattr(record, "step", None),
        }
        if hasattr(record, "progress"):
            payload["progress"] = record.progress
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # masked by SecretMaskingFilter
            payload["exception"] = record.exc_text
        if isinstance(getattr(record, TRACEBACK, None), str):
            payload[TRACEBACK] = getattr(record, TRACEBACK)
        return json.dumps(payload)


class RotatingJsonLinesHandler(logging.handlers.RotatingFileHandler):
    """Rotates when the next record would pass ``max_bytes`` or, with ``daily``, when the UTC date
    changes; keeps ``backup_count`` rotated files (``events.jsonl.1`` newest). The record that triggers
    a rotation is written to the new file, under the same lock as the rotation: none is lost."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backup_count: int,
        daily: bool = True,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ):
        # the date of what the file already holds, read before opening it creates an empty one
        written_on = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date() if path.exists() else None
        super().__init__(path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        self.daily = daily
        self.today = today
        self.opened_on = written_on or today()

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.daily and self.today() != self.opened_on and os.path.getsize(self.baseFilename) > 0:
            return True
        return bool(super().shouldRollover(record))

    def doRollover(self) -> None:
        super().doRollover()
        self.opened_on = self.today()


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time of the record, not at set-up; skips ``FILES_ONLY``
    records."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.addFilter(lambda record: getattr(record, "console", True))

    @property
    def stream(self) -> object:
        return sys.stdout

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(stdout_level: str = "INFO") -> None:
    """Readable lines on stdout for the package's loggers (idempotent). Records below ``stdout_level``
    still reach the JSON files; CRITICAL reaches stdout whatever the level."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = next((h for h in logger.handlers if isinstance(h, StdoutHandler)), None)
    if handler is None:
        handler = StdoutHandler()
        handler.addFilter(SecretMaskingFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    handler.setLevel(min(logging.getLevelName(stdout_level.upper()), logging.CRITICAL))


@contextlib.contextmanager
def json_log_file(path: Path, settings: LogsConfig | None = None) -> Iterator[None]:
    """Also write the package's log records to ``path`` as JSON lines while the block runs."""
    settings = settings or LogsConfig()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingJsonLinesHandler(path, int(settings.max_mb * MB), settings.backup_count, settings.daily)
    handler.setLevel(logging.INFO)
    handler.addFilter(SecretMaskingFilter())
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger(ROOT)
    if logger.getEffectiveLevel() > logging.INFO:  # the file records INFO and up, whatever stdout shows
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


@contextlib.contextmanager
def trial_context(trial_id: str) -> Iterator[None]:
    token = current_trial_id.set(trial_id)
    try:
        yield
    finally:
        current_trial_id.reset(token)
