"""A tracker that never makes training wait: every call is journaled, a background thread replays it.

Each call appends its record to the journal (``journal.py``) with one ``write()`` and returns; a sender
thread fsyncs the journal in groups (at most ``sync_interval_s`` after a write), delivers records in
order, metrics batched per run, and confirms them in the journal once the tracker has them. When the
tracker is unreachable or errors, the sender retries with backoff 1, 2, 4, 8, 16 s (then every 16 s);
records pile up in the journal on disk, a WARNING is logged when they pass
``warn_bytes``, and nothing is dropped. After a failure, and for records adopted from a process that
died, metrics are first checked against the tracker and skipped if it already holds the same
(run_id, metric, step, timestamp). A run started while the tracker is down gets a local id
(``local-<hex>``); the sender creates the real run when it can and records the mapping in
``run_ids.json``, which ``resolve`` reads.

Records the tracker rejects as invalid (not an outage) go to ``rejected.jsonl`` with the reason and an
ERROR line, never silently away.
"""

from __future__ import annotations

import heapq
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redsm5_hpo.atomic_files import write_json_atomic
from redsm5_hpo.errors import first_line
from redsm5_hpo.tracking.auth import TokenProvider
from redsm5_hpo.tracking.base import flatten_params
from redsm5_hpo.tracking.journal import METRIC_KINDS, Entry, Journal, Pending, expand_metrics
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker
from redsm5_hpo.tracking.sanitize import mask_secrets

log = logging.getLogger(__name__)

LOCAL_PREFIX = "local-"
RUN_IDS_FILE = "run_ids.json"
REJECTED_FILE = "rejected.jsonl"
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)
MAX_METRICS_PER_BATCH = 1000
PERMANENT_ERRORS = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "BAD_REQUEST",
    "INVALID_STATE",
}
AUTH_ERRORS = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
_CORRUPT = re.compile(r"not a database|malformed|corrupt", re.IGNORECASE)


@dataclass(frozen=True)
class BufferSettings:
    warn_bytes: int = 100 * 1024 * 1024
    """WARNING when unconfirmed records pass this size (again at each doubling); there is no hard limit."""
    flush_timeout_s: float = 30.0
    """How long ``close()`` waits for the tracker to confirm what is left; the rest stays journaled."""
    rotate_bytes: int = 8 * 1024 * 1024
    """Start a new journal segment once the current one is this big and fully confirmed."""
    backoff_s: tuple[float, ...] = BACKOFF_S
    linger_s: float = 1.0
    """Records wait this long for company before a request goes out (fewer requests, less contention)."""
    sync_interval_s: float = 0.1
    """Group commit: written records are fsynced at most this long after their write (0: in the call)."""


def backoff_delay(failures: int, schedule: tuple[float, ...] = BACKOFF_S) -> float:
    """Wait before retry number ``failures`` (1-based): 1, 2, 4, 8, 16, 16, ... seconds."""
    return schedule[min(failures, len(schedule)) - 1]


def is_permanent(error: BaseException) -> bool:
    """The tracker understood the request and refused it: retrying cannot help."""
    return getattr(error, "error_code", None) in PERMANENT_ERRORS


def replay_order(groups: Iterable[list[Pending]]) -> list[Pending]:
    """Merge the unconfirmed records of several journal segments by (timestamp, step); each segment's
    own order is kept (its acknowledgements are counted in file order)."""
    return list(heapq.merge(*groups, key=lambda p: (p.entry.get("timestamp", 0), p.entry.get("step", 0))))


def unseen_metrics(entries: list[Entry], held: set[tuple[str, int, int]]) -> list[Entry]:
    """Drop metrics the tracker (``held``: metric, step, timestamp) or an earlier entry already has."""
    seen = set(held)
    fresh = []
    for e in entries:
        key = (e["metric"], int(e["step"]), int(e["timestamp"]))
        if key not in seen:
            seen.add(key)
            fresh.append(e)
    return fresh


def take_batch(queue: Iterable[Pending], limit: int = MAX_METRICS_PER_BATCH) -> list[Pending]:
    """The next record, or the run of consecutive metric records of one run that follows it (up to about
    ``limit`` metrics)."""
    batch: list[Pending] = []
    count = 0
    for item in queue:
        entry = item.entry
        is_metric = entry["kind"] in METRIC_KINDS
        if batch and (not is_metric or entry["run_id"] != batch[0].entry["run_id"] or count >= limit):
            break
        batch.append(item)
        if not is_metric:
            break
        count += len(entry["values"]) if entry["kind"] == "metrics" else 1
    return batch


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


class JournalingTracker:
    """The ``Tracker`` the pipeline uses: journal first, deliver in the background."""

    def __init__(
        self,
        connect: Callable[[], MLflowTracker],
        journal_dir: Path,
        settings: BufferSettings = BufferSettings(),
        token_provider: TokenProvider | None = None,
        describe: str = "the tracker",
    ):
        self._connect = connect
        self.settings = settings
        self.token_provider = token_provider
        self.describe = describe
        self.journal = Journal(journal_dir, settings.sync_interval_s)
        self.run_ids = RunIdMap(Path(journal_dir) / RUN_IDS_FILE)
        self.rejected_path = Path(journal_dir) / REJECTED_FILE
        self._inner: MLflowTracker | None = None
        self._cond = threading.Condition()
        self._queue: deque[Pending] = deque()
        self._stopping = False
        self._flushing = 0
        """Callers waiting in ``flush()``: deliver at once, no linger."""
        self._oldest_at = 0.0
        """When the oldest queued record was queued (monotonic)."""
        self._deadline = float("inf")
        self._closed = False
        self._check_tracker = False
        """Set after a failure or an adoption: a sent batch may have arrived, so look before resending."""
        self._retry_at = 0.0
        """After a failure, no batch goes out before this time (monotonic): the backoff."""
        self.outage_since: float | None = None
        self._failures = 0
        self._warn_at = settings.warn_bytes
        self._guidance_given: set[str] = set()
        """Which repair guidance (``auth``, ``corrupt``) was logged already: each once per process."""
        self.replayed = 0
        self.skipped_duplicates = 0
        self._held_cache: dict[str, tuple[set[str], set[tuple[str, int, int]]]] = {}
        """Metrics not sent because the tracker already held them (a send whose confirmation was lost)."""
        adopted = self.journal.adopt_orphans()
        if adopted:
            self._check_tracker = True
            by_segment: dict[Path, list[Pending]] = {}
            for item in adopted:
                by_segment.setdefault(item.segment.path, []).append(item)
            self._queue.extend(replay_order(by_segment.values()))
        self._thread = threading.Thread(target=self._sender, name="tracking-replay", daemon=True)
        self._thread.start()

    # -- the Tracker interface -----------------------------------------------------------------

    def start_run(self, name: str, tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        parent = self.run_ids.resolve(parent_run_id) if parent_run_id else None
        if self.outage_since is None and not (parent or "").startswith(LOCAL_PREFIX):
            try:
                return self._tracker().start_run(name, tags, parent)
            except Exception as e:
                self._note_failure(e)
        local = f"{LOCAL_PREFIX}{uuid.uuid4().hex}"
        masked = {k: mask_secrets(str(v)) for k, v in tags.items()}
        self._append([{"kind": "create_run", "run_id": local, "name": name, "tags": masked, "parent": parent_run_id}])
        log.warning("%s is unreachable: run %s gets the local id %s until it is back", self.describe, name, local)
        return local

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        flat = {k: mask_secrets(v) for k, v in flatten_params(params).items()}  # the journal holds no secret
        self._append([{"kind": "params", "run_id": run_id, "params": flat}])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """One journal line for the whole call: the loop's cost is one small encode and one ``write()``."""
        values = {k: float(v) for k, v in metrics.items()}
        now = int(time.time() * 1000)
        self._append([{"kind": "metrics", "run_id": run_id, "step": step, "timestamp": now, "values": values}])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._append([{"kind": "tags", "run_id": run_id, "tags": {k: mask_secrets(str(v)) for k, v in tags.items()}}])

    def log_artifact(self, run_id: str, path: Path) -> None:
        self._append([{"kind": "artifact", "run_id": run_id, "path": str(Path(path).resolve())}])

    def log_dataset(self, run_id: str, dataset: Mapping[str, Any]) -> None:
        self._append([{"kind": "dataset", "run_id": run_id, "dataset": dict(dataset)}])

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._append([{"kind": "status", "run_id": run_id, "status": status}])

    def reopen_run(self, run_id: str) -> None:
        self._append([{"kind": "status", "run_id": run_id, "status": "RUNNING"}])

    def logged_metric_steps(self, run_id: str) -> set[tuple[str, int]]:
        """What the tracker holds for the run plus what is still on its way there."""
        real = self.run_ids.resolve(run_id)
        held: set[tuple[str, int]] = set()
        if not real.startswith(LOCAL_PREFIX):
            try:
                held = self._tracker().logged_metric_steps(real)
            except Exception as e:
                log.warning(
                    "cannot read run %s's metrics from %s (%s); only the journal's records are known, so "
                    "`redsm5-hpo verify` may later report duplicates",
                    run_id,
                    self.describe,
                    mask_secrets(first_line(e)),
                )
        with self._cond:
            lines = [p.entry for p in self._queue if p.entry["kind"] in METRIC_KINDS]
        same_run = {r for r in {e["run_id"] for e in lines} if self.run_ids.resolve(r) == real}  # once per id
        metrics = [m for e in lines if e["run_id"] in same_run for m in expand_metrics(e)]
        pending = {(e["metric"], int(e["step"])) for e in metrics}
        return held | pending

    def metric_points(self, run_id: str) -> list[tuple[str, int, int]]:
        return self._tracker().metric_points(self.run_ids.resolve(run_id))

    def resolve(self, run_id: str) -> str:
        return self.run_ids.resolve(run_id)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every record is confirmed (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue and time.monotonic() < deadline:
                    self._cond.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                return not self._queue
            finally:
                self._flushing -= 1

    def close(self, timeout_s: float | None = None) -> int:
        """Deliver what is left (up to ``flush_timeout_s``), stop the sender, release the journal. Returns
        the records left in the journal for the next start."""
        timeout = self.settings.flush_timeout_s if timeout_s is None else timeout_s
        with self._cond:
            if self._closed:
                return 0
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + 1.0)
        with self._cond:
            self._closed = True
            left = self.journal.close()
        if left:
            log.warning(
                "%d tracking record(s) are kept in %s: %s did not confirm them in time. They are sent at the "
                "next start (`redsm5-hpo sync`, or any study command).",
                left,
                self.journal.directory,
                self.describe,
            )
        return left

    def __enter__(self) -> JournalingTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _tracker(self) -> MLflowTracker:
        if self._inner is None:
            import mlflow.tracking  # noqa: F401 - the slow first import happens before the token is fetched

        if self.token_provider:
            self.token_provider.ensure_fresh()
        if self._inner is None:
            self._inner = self._connect()
        return self._inner

    def _append(self, entries: Iterable[Entry]) -> None:
        now = time.monotonic()
        with self._cond:
            if self._closed:
                raise RuntimeError("tracker is closed")
            was_synced = self.journal.unsynced_since is None
            items = self.journal.append(entries, now)
            if not self._queue:
                self._oldest_at = now
            self._queue.extend(items)
            if len(self._queue) >= MAX_METRICS_PER_BATCH or (was_synced and self.journal.unsynced_since is not None):
                self._cond.notify_all()  # a full batch to send, or a group commit to schedule
            pending_bytes = self.journal.pending_bytes
        if pending_bytes > self._warn_at:
            log.warning(
                "tracking journal %s holds %.0f MB not yet confirmed by %s (it keeps growing; nothing is dropped)",
                self.journal.directory,
                pending_bytes / 2**20,
                self.describe,
            )
            self._warn_at *= 2

    def _sender(self) -> None:
        while True:
            with self._cond:
                sync, send = self._wait_for_work()
                fds = self.journal.take_unsynced() if sync else []
                batch = take_batch(self._queue) if send else []
                done = not batch and self._stopping and (not self._queue or time.monotonic() >= self._deadline)
            Journal.sync_unsynced(fds)  # outside the lock: the loop's appends never wait for the disk
            if done:
                return  # closing: everything sent, or the flush timeout passed (the rest stays journaled)
            if not batch:
                continue
            try:
                self._deliver([p.entry for p in batch])
            except Exception as e:
                if is_permanent(e):
                    self._reject(batch, e)
                    continue
                self._note_failure(e)
                self._check_tracker = True
                self._held_cache.clear()
                with self._cond:
                    self._retry_at = time.monotonic() + backoff_delay(self._failures, self.settings.backoff_s)
                continue
            self._confirm(batch)

    def _wait_for_work(self) -> tuple[bool, bool]:
        """Under the lock: wait until the journal's group commit is due and/or a batch should go out
        (records lingered ``linger_s``, a full batch, a flush or close; never before a retry is due), or
        until a close has nothing more to do. Returns (sync, send)."""
        while True:
            now = time.monotonic()
            sync_in = self.journal.sync_due(now)
            sync = sync_in is not None and sync_in <= 0
            if self._stopping and (not self._queue or now >= self._deadline):
                return sync, False
            urgent = self._stopping or self._flushing or len(self._queue) >= MAX_METRICS_PER_BATCH
            ready_at = max(self._retry_at, now if urgent else self._oldest_at + self.settings.linger_s)
            send = bool(self._queue) and now >= ready_at
            if sync or send:
                return sync, send
            timeout = ready_at - now if self._queue else 0.5
            if sync_in is not None:
                timeout = min(timeout, sync_in)
            if self._stopping:
                timeout = min(timeout, self._deadline - now)
            self._cond.wait(max(timeout, 0.001))

    def _confirm(self, batch: list[Pending]) -> None:
        with self._cond:
            if self._closed:
                return
            for _ in batch:
                self._queue.popleft()
            self.journal.confirm(batch)
            try:
                self.journal.rotate_if_confirmed(self.settings.rotate_bytes)
            except OSError as e:
                log.warning("tracking journal: cannot start a new segment (%s)", e.strerror)
            if not self._queue:
                self._check_tracker = False
            elif self.outage_since is None:
                self._oldest_at = time.monotonic()  # what came in meanwhile lingers for company too
            self._cond.notify_all()
        self.replayed += len(batch)
        if self.outage_since is not None:
            log.info(
                "%s is reachable again after %.0f s; replaying the journal",
                self.describe,
                time.time() - self.outage_since,
            )
            self.outage_since = None
            self._failures = 0

    def _deliver(self, entries: list[Entry]) -> None:
        tracker = self._tracker()
        first = entries[0]
        kind = first["kind"]
        if kind == "create_run":
            parent = self.run_ids.resolve(first["parent"]) if first.get("parent") else None
            real = tracker.start_run(first["name"], first["tags"], parent)
            self.run_ids.record(first["run_id"], real)
            return
        run_id = self.run_ids.resolve(first["run_id"])
        if run_id.startswith(LOCAL_PREFIX):
            raise _Rejected(f"run {first['run_id']} was never created in the tracker")
        if kind in METRIC_KINDS:
            entries = [m for e in entries for m in expand_metrics(e)]
            if self._check_tracker:
                fresh = unseen_metrics(entries, self._held(tracker, run_id, {e["metric"] for e in entries}))
                self.skipped_duplicates += len(entries) - len(fresh)
                entries = fresh
                if not entries:
                    return
            try:
                tracker.log_metric_points(
                    run_id, [(e["metric"], e["value"], e["timestamp"], e["step"]) for e in entries]
                )
            except Exception:
                self._held_cache.pop(run_id, None)  # some of it may have arrived: look again next time
                raise
            if run_id in self._held_cache:
                self._held_cache[run_id][1].update((e["metric"], e["step"], e["timestamp"]) for e in entries)
        elif kind == "params":
            tracker.log_params(run_id, first["params"])
        elif kind == "tags":
            tracker.set_tags(run_id, first["tags"])
        elif kind == "artifact":
            if not Path(first["path"]).is_file():
                raise _Rejected(f"artifact {first['path']} no longer exists")
            tracker.log_artifact(run_id, Path(first["path"]))
        elif kind == "dataset":
            tracker.log_dataset(run_id, first["dataset"])
        elif kind == "status":
            if first["status"] == "RUNNING":
                tracker.reopen_run(run_id)
            else:
                tracker.end_run(run_id, first["status"])
        else:
            raise _Rejected(f"unknown record kind {kind!r}")

    def _held(self, tracker: MLflowTracker, run_id: str, keys: set[str]) -> set[tuple[str, int, int]]:
        """The (metric, step, timestamp) points of ``keys`` the tracker holds for the run, fetched once per
        metric and then kept up to date with what this process sends."""
        known_keys, points = self._held_cache.setdefault(run_id, (set(), set()))
        missing = keys - known_keys
        if missing:
            points.update(tracker.metric_points(run_id, missing))
            known_keys.update(missing)
        return points

    def _reject(self, batch: list[Pending], error: BaseException) -> None:
        reason = mask_secrets(first_line(error))
        with open(self.rejected_path, "a", encoding="utf-8") as f:
            for p in batch:
                f.write(json.dumps({**p.entry, "rejected_because": reason}) + "\n")
        log.error(
            "%s refused %d tracking record(s) (%s); they are kept in %s",
            self.describe,
            len(batch),
            reason,
            self.rejected_path,
        )
        self._confirm(batch)

    def _note_failure(self, error: BaseException) -> None:
        self._failures += 1
        message = mask_secrets(first_line(error))
        if self.outage_since is None:
            self.outage_since = time.time()
            log.warning(
                "%s is unreachable or failing (%s); training goes on, metrics are journaled in %s and replayed "
                "with backoff",
                self.describe,
                message,
                self.journal.directory,
            )
        if getattr(error, "error_code", None) in AUTH_ERRORS and "auth" not in self._guidance_given:
            self._guidance_given.add("auth")
            log.error(
                "%s refuses the credentials (%s): set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD, or tracking.token_command; metrics wait in %s meanwhile",
                self.describe,
                message,
                self.journal.directory,
            )
        if _CORRUPT.search(str(error)) and "corrupt" not in self._guidance_given:
            self._guidance_given.add("corrupt")
            log.error(
                "the tracking database looks corrupted (%s). Buffered metrics are safe in %s. To repair: stop "
                "the study, then either recover the SQLite file (`sqlite3 mlflow.db .recover | sqlite3 "
                "mlflow-recovered.db`, then move it in place of mlflow.db), restore it from a backup, or move it "
                "aside to start a fresh one; then run `redsm5-hpo sync` (or resume) to replay the journal.",
                message,
                self.journal.directory,
            )


class _Rejected(Exception):
    error_code = "INVALID_STATE"
