"""What the operator is told about the tracker: that it is unreachable (when an outage starts), that it
is back, and how to repair refused credentials or a corrupted database (each once per process).

State only and log lines; the sender calls it with its lock held, so nothing here blocks or does I/O
beyond logging.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from redsm5_hpo.errors import first_line
from redsm5_hpo.tracking.records import AUTH_ERRORS
from redsm5_hpo.tracking.sanitize import mask_secrets

log = logging.getLogger(__name__)

_CORRUPT = re.compile(r"not a database|malformed|corrupt", re.IGNORECASE)


class OperatorGuidance:
    def __init__(self, describe: str, journal_dir: Path) -> None:
        self.describe = describe
        self.journal_dir = journal_dir
        self.outage_since: float | None = None
        """Wall-clock start of the current outage; None while the tracker answers."""
        self.failures = 0
        """Failed deliveries in a row (the backoff's index)."""
        self._given: set[str] = set()

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        message = mask_secrets(first_line(error))
        if self.outage_since is None:
            self.outage_since = time.time()
            log.warning(
                "%s is unreachable or failing (%s); training goes on, metrics are journaled in %s and replayed "
                "with backoff",
                self.describe,
                message,
                self.journal_dir,
            )
        if getattr(error, "error_code", None) in AUTH_ERRORS and "auth" not in self._given:
            self._given.add("auth")
            log.error(
                "%s refuses the credentials (%s): set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD, or tracking.token_command; metrics wait in %s meanwhile",
                self.describe,
                message,
                self.journal_dir,
            )
        if _CORRUPT.search(str(error)) and "corrupt" not in self._given:
            self._given.add("corrupt")
            log.error(
                "the tracking database looks corrupted (%s). Buffered metrics are safe in %s. To repair: stop "
                "the study, then either recover the SQLite file (`sqlite3 mlflow.db .recover | sqlite3 "
                "mlflow-recovered.db`, then move it in place of mlflow.db), restore it from a backup, or move it "
                "aside to start a fresh one; then run `redsm5-hpo sync` (or resume) to replay the journal.",
                message,
                self.journal_dir,
            )

    def recovered(self) -> None:
        if self.outage_since is None:
            return
        log.info(
            "%s is reachable again after %.0f s; replaying the journal", self.describe, time.time() - self.outage_since
        )
        self.outage_since = None
        self.failures = 0
