"""Delivery of journal records to MLflow: one batch at a time, dispatched by record kind, with local run
ids mapped to real ones and every metric delivered once per (run, metric, step).

Only the sender thread delivers. Every call here talks to the tracker and may block for one request:
up to ``tracking.request_timeout_s`` (MLflow's own retries are off; the sender retries with backoff),
plus ``tracking.token_command`` when the bearer token is due for renewal.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from redsm5_hpo.atomic_files import write_json_atomic
from redsm5_hpo.tracking.auth import TokenProvider
from redsm5_hpo.tracking.journal import Entry, Kind, expand_metrics
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker
from redsm5_hpo.tracking.records import LOCAL_PREFIX, Rejected, metric_key, unseen_metrics

RUN_IDS_FILE = "run_ids.json"


class RunIdMap:
    """Local run ids (minted during an outage) -> the tracker's run ids, persisted for other processes."""

    def __init__(self, path: Path):
        self.path = path
        self._ids: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        if self.path.is_file():
            self._ids.update(json.loads(self.path.read_text(encoding="utf-8")))

    def resolve(self, run_id: str) -> str:
        if run_id.startswith(LOCAL_PREFIX) and run_id not in self._ids:
            self.reload()
        return self._ids.get(run_id, run_id)

    def record(self, local: str, real: str) -> None:
        self.reload()
        self._ids[local] = real
        write_json_atomic(self.path, self._ids)


class Connection:
    """The MLflow client, connected on first use (after a fresh token); safe to share between threads."""

    def __init__(self, connect: Callable[[], MLflowTracker], token_provider: TokenProvider | None) -> None:
        self._connect = connect
        self.token_provider = token_provider
        self._inner: MLflowTracker | None = None
        self._lock = threading.Lock()

    def get(self) -> MLflowTracker:
        if self._inner is None:
            import mlflow.tracking  # noqa: F401 - the slow first import happens before the token is fetched

        if self.token_provider:
            self.token_provider.ensure_fresh()
        with self._lock:
            if self._inner is None:
                self._inner = self._connect()
            return self._inner


class Delivery:
    """Sends one batch of records (``deliver``). Every metric is delivered at most once per (run, metric,
    step): per run it keeps the keys the tracker holds (read once, on the first metric for a run this
    process did not create, then kept up to date with what it sends), so a record written again by a
    restart, or sent again after a lost confirmation, is skipped."""

    def __init__(self, connection: Connection, run_ids: RunIdMap) -> None:
        self.connection = connection
        self.run_ids = run_ids
        self.skipped_duplicates = 0
        self._held: dict[str, set[tuple[str, int]]] = {}
        self._lock = threading.Lock()
        """Guards ``_held``: ``created`` comes from the caller's thread, the rest from the sender's."""

    def created(self, run_id: str) -> None:
        """This process created the run just now: the tracker holds none of its metrics yet (no read needed)."""
        with self._lock:
            self._held[run_id] = set()

    def forget_held(self, run_id: str) -> None:
        """After a failure the tracker may hold more of the run than we know: look again before the next send."""
        with self._lock:
            self._held.pop(run_id, None)

    def deliver(self, entries: list[Entry]) -> None:
        """Raises what the tracker raised; ``Rejected`` for a record that can never be delivered."""
        tracker = self.connection.get()
        first = entries[0]
        try:
            kind = Kind(first["kind"])
        except ValueError:
            raise Rejected(f"unknown record kind {first['kind']!r}") from None
        if kind is Kind.CREATE_RUN:
            parent = self.run_ids.resolve(first["parent"]) if first.get("parent") else None
            real = tracker.start_run(first["name"], first["tags"], parent)
            self.run_ids.record(first["run_id"], real)
            self.created(real)
            return
        run_id = self.run_ids.resolve(first["run_id"])
        if run_id.startswith(LOCAL_PREFIX):
            raise Rejected(f"run {first['run_id']} was never created in the tracker")
        DELIVER[kind](self, tracker, run_id, entries)

    def deliver_metrics(self, tracker: MLflowTracker, run_id: str, entries: list[Entry]) -> None:
        self._deliver_metrics(tracker, run_id, [m for e in entries for m in expand_metrics(e)])

    def deliver_status(self, tracker: MLflowTracker, run_id: str, entries: list[Entry]) -> None:
        status = entries[0]["status"]
        if status == "RUNNING":
            tracker.reopen_run(run_id)
        else:
            tracker.end_run(run_id, status)
            self.forget_held(run_id)  # a run that is reopened later is read again then

    def _deliver_metrics(self, tracker: MLflowTracker, run_id: str, entries: list[Entry]) -> None:
        held = self._held_keys(tracker, run_id)
        fresh = unseen_metrics(entries, held)
        self.skipped_duplicates += len(entries) - len(fresh)
        if not fresh:
            return
        try:
            tracker.log_metric_points(run_id, [(e["metric"], e["value"], e["timestamp"], e["step"]) for e in fresh])
        except Exception:
            self.forget_held(run_id)  # some of it may have arrived: look again next time
            raise
        held.update(metric_key(e) for e in fresh)

    def _held_keys(self, tracker: MLflowTracker, run_id: str) -> set[tuple[str, int]]:
        """The (metric, step) keys the tracker holds for the run: read once (one request per metric the run
        has), then kept up to date with what this process sends."""
        with self._lock:
            held = self._held.get(run_id)
        if held is None:
            held = tracker.logged_metric_steps(run_id)
            with self._lock:
                self._held[run_id] = held
        return held


Deliver = Callable[["Delivery", MLflowTracker, str, list[Entry]], None]


def _artifact(tracker: MLflowTracker, run_id: str, entry: Entry) -> None:
    if not Path(entry["path"]).is_file():
        raise Rejected(f"artifact {entry['path']} no longer exists")
    tracker.log_artifact(run_id, Path(entry["path"]))


def _one(send: Callable[[MLflowTracker, str, Entry], None]) -> Deliver:
    """A kind whose batch is one record (only metric records are sent several at a time)."""
    return lambda delivery, tracker, run_id, entries: send(tracker, run_id, entries[0])


DELIVER: dict[Kind, Deliver] = {
    Kind.METRICS: Delivery.deliver_metrics,
    Kind.METRIC: Delivery.deliver_metrics,
    Kind.PARAMS: _one(lambda tracker, run_id, entry: tracker.log_params(run_id, entry["params"])),
    Kind.TAGS: _one(lambda tracker, run_id, entry: tracker.set_tags(run_id, entry["tags"])),
    Kind.ARTIFACT: _one(_artifact),
    Kind.DATASET: _one(lambda tracker, run_id, entry: tracker.log_dataset(run_id, entry["dataset"])),
    Kind.STATUS: Delivery.deliver_status,
}
"""How each kind of journal record reaches the tracker (``create_run`` maps a local run id first, in
``Delivery.deliver``)."""
