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
import sys
from collections.abc import Iterator
from pathlib import Path

from redsm5_hpo.tracking.sanitize import SecretMaskingFilter

current_trial_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_trial_id", default=None)
ROOT = "redsm5_hpo"


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
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload)


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time of the record, not at set-up."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> object:
        return sys.stdout

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Readable lines on stdout for the package's loggers (idempotent)."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    logger.propagate = False
    if not any(isinstance(h, StdoutHandler) for h in logger.handlers):
        handler = StdoutHandler()
        handler.addFilter(SecretMaskingFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)


@contextlib.contextmanager
def json_log_file(path: Path) -> Iterator[None]:
    """Also write the package's log records to ``path`` as JSON lines while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.addFilter(SecretMaskingFilter())
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger(ROOT)
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
