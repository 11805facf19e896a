"""The tracker the pipeline uses: every write is journaled on disk first and delivered to MLflow by a
background thread, so an outage of the tracking server loses nothing and stops nothing.

What may block, and for how long:
- Writes (``log_params``, ``log_metrics``, ``set_tags``, ``log_artifact``, ``log_dataset``, ``end_run``,
  ``reopen_run``) never wait for the network: each is one ``write()`` to the journal under a lock held
  for microseconds (with ``tracking.journal_sync_s=0`` also one fsync).
- ``start_run`` asks the tracker for the run id while it is believed reachable: up to one request,
  ``tracking.request_timeout_s``. When that fails, or during an outage, it returns at once with a local
  id (``local-<hex>``) and the sender creates the real run later (``run_ids.json`` keeps the mapping).
- The reads ``logged_metric_steps`` (once when a trial resumes) and ``metric_points`` (``verify``) ask
  the tracker: one request per metric the run holds.
- ``flush`` and ``close`` wait for the sender, at most their timeout (``tracking.flush_timeout_s``).
The token command (``tracking.token_command``) runs before a request when the token is due for renewal.

Writes are idempotent: a metric is delivered at most once per (run, metric, step), so whatever restarts
and logs it again (a trial redoing an epoch, a study redoing its end, a journal replayed after a crash),
the tracker holds it once, with the first value logged (``delivery``).

The parts: ``records`` (pure decisions: batches, replay order, backoff, duplicates), ``journal`` (the
files), ``delivery`` (one batch to MLflow, run-id mapping), ``sender`` (the thread, sole owner of the
queue and the outage state) and ``guidance`` (what the operator is told). Records the tracker rejects
as invalid (not an outage) go to ``rejected.jsonl`` with the reason and an ERROR line.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from redsm5_hpo.errors import first_line
from redsm5_hpo.tracking.auth import TokenProvider
from redsm5_hpo.tracking.base import flatten_params
from redsm5_hpo.tracking.delivery import RUN_IDS_FILE, Connection, Delivery, RunIdMap
from redsm5_hpo.tracking.guidance import OperatorGuidance
from redsm5_hpo.tracking.journal import METRIC_KINDS, Journal, Kind, expand_metrics
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker
from redsm5_hpo.tracking.records import (
    LOCAL_PREFIX,
    BufferSettings,
    backoff_delay,
    replay_order,
    take_batch,
    unseen_metrics,
)
from redsm5_hpo.tracking.sanitize import mask_secrets
from redsm5_hpo.tracking.sender import Sender

__all__ = [
    "LOCAL_PREFIX",
    "BufferSettings",
    "JournalingTracker",
    "backoff_delay",
    "replay_order",
    "take_batch",
    "unseen_metrics",
]

log = logging.getLogger(__name__)


class JournalingTracker:
    """The ``Tracker`` the pipeline uses: journal first, deliver in the background."""

    def __init__(
        self,
        connect: Callable[[], MLflowTracker],
        journal_dir: Path,
        settings: BufferSettings | None = None,
        token_provider: TokenProvider | None = None,
        describe: str = "the tracker",
    ):
        self.settings = settings = settings or BufferSettings()
        self.describe = describe
        self.journal = Journal(journal_dir, settings.sync_interval_s)
        self.run_ids = RunIdMap(Path(journal_dir) / RUN_IDS_FILE)
        self.connection = Connection(connect, token_provider)
        self.delivery = Delivery(self.connection, self.run_ids)
        self.sender = Sender(self.journal, self.delivery, OperatorGuidance(describe, self.journal.directory), settings)

    # -- writes: journaled, never waiting for the network ------------------------------------------

    def start_run(self, name: str, tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        parent = self.run_ids.resolve(parent_run_id) if parent_run_id else None
        if not self.sender.in_outage and not (parent or "").startswith(LOCAL_PREFIX):
            try:
                run_id = self.connection.get().start_run(name, tags, parent)
            except Exception as e:
                self.sender.failed(e)
            else:
                self.delivery.created(run_id)
                return run_id
        local = f"{LOCAL_PREFIX}{uuid.uuid4().hex}"
        masked = {k: mask_secrets(str(v)) for k, v in tags.items()}
        self.sender.append(
            [{"kind": Kind.CREATE_RUN, "run_id": local, "name": name, "tags": masked, "parent": parent_run_id}]
        )
        log.warning("%s is unreachable: run %s gets the local id %s until it is back", self.describe, name, local)
        return local

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        flat = {k: mask_secrets(v) for k, v in flatten_params(params).items()}  # the journal holds no secret
        self.sender.append([{"kind": Kind.PARAMS, "run_id": run_id, "params": flat}])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """One journal line for the whole call: the loop's cost is one small encode and one ``write()``."""
        values = {k: float(v) for k, v in metrics.items()}
        now = int(time.time() * 1000)
        self.sender.append([{"kind": Kind.METRICS, "run_id": run_id, "step": step, "timestamp": now, "values": values}])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        masked = {k: mask_secrets(str(v)) for k, v in tags.items()}
        self.sender.append([{"kind": Kind.TAGS, "run_id": run_id, "tags": masked}])

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.sender.append([{"kind": Kind.ARTIFACT, "run_id": run_id, "path": str(Path(path).resolve())}])

    def log_dataset(self, run_id: str, dataset: Mapping[str, Any]) -> None:
        self.sender.append([{"kind": Kind.DATASET, "run_id": run_id, "dataset": dict(dataset)}])

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.sender.append([{"kind": Kind.STATUS, "run_id": run_id, "status": status}])

    def reopen_run(self, run_id: str) -> None:
        self.sender.append([{"kind": Kind.STATUS, "run_id": run_id, "status": "RUNNING"}])

    # -- reads: one request to the tracker each ----------------------------------------------------

    def logged_metric_steps(self, run_id: str) -> set[tuple[str, int]]:
        """What the tracker holds for the run plus what is still on its way there."""
        real = self.run_ids.resolve(run_id)
        held: set[tuple[str, int]] = set()
        if not real.startswith(LOCAL_PREFIX):
            try:
                held = self.connection.get().logged_metric_steps(real)
            except Exception as e:
                log.warning(
                    "cannot read run %s's metrics from %s (%s); only the journal's records are known, so "
                    "`redsm5-hpo verify` may later report duplicates",
                    run_id,
                    self.describe,
                    mask_secrets(first_line(e)),
                )
        lines = self.sender.queued(METRIC_KINDS)
        same_run = {r for r in {e["run_id"] for e in lines} if self.run_ids.resolve(r) == real}  # once per id
        metrics = [m for e in lines if e["run_id"] in same_run for m in expand_metrics(e)]
        pending = {(e["metric"], int(e["step"])) for e in metrics}
        return held | pending

    def metric_points(self, run_id: str) -> list[tuple[str, int, int]]:
        return self.connection.get().metric_points(self.run_ids.resolve(run_id))

    def resolve(self, run_id: str) -> str:
        return self.run_ids.resolve(run_id)

    # -- the journal's state and the end -----------------------------------------------------------

    @property
    def pending(self) -> int:
        return self.sender.pending

    @property
    def replayed(self) -> int:
        return self.sender.replayed

    @property
    def skipped_duplicates(self) -> int:
        return self.delivery.skipped_duplicates

    def flush(self, timeout_s: float) -> bool:
        """Wait until every record is confirmed (True) or ``timeout_s`` passes (False)."""
        return self.sender.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> int:
        """Deliver what is left (up to ``flush_timeout_s``), stop the sender, release the journal. Returns
        the records left in the journal for the next start."""
        left = self.sender.close(self.settings.flush_timeout_s if timeout_s is None else timeout_s)
        if left:
            log.warning(
                "%d tracking record(s) are kept in %s: %s did not confirm them in time. They are sent at the "
                "next start (`redsm5-hpo sync`, or any study command).",
                left,
                self.journal.directory,
                self.describe,
            )
        return left or 0

    def __enter__(self) -> JournalingTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
