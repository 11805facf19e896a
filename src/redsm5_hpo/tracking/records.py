"""Tracking records and the pure decisions about them: what goes out next and in which order, which
metrics the tracker holds already, how long to wait after a failure, which refusals are final.
No I/O and no threads here."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from redsm5_hpo.tracking.journal import METRIC_KINDS, Entry, Kind, Pending

LOCAL_PREFIX = "local-"
"""Run ids minted while the tracker is unreachable; the real run is created when it is back."""
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


class Rejected(Exception):
    """A record that can never be delivered (its run was never created, its artifact is gone)."""

    error_code = "INVALID_STATE"


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


def metric_key(entry: Entry) -> tuple[str, int]:
    """What makes a metric record unique within its run: (metric, step). A restart of any kind (a trial
    redoing an epoch, a study logging its test metrics again, a journal replayed after a crash) writes the
    same key again, with another timestamp; the key stays the same, so it is delivered once."""
    return str(entry["metric"]), int(entry["step"])


def unseen_metrics(entries: list[Entry], held: set[tuple[str, int]]) -> list[Entry]:
    """Drop metrics whose key the tracker (``held``: metric, step) or an earlier entry already has: the
    first value logged at a step is the one kept."""
    seen = set(held)
    fresh = []
    for e in entries:
        key = metric_key(e)
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
        count += len(entry["values"]) if entry["kind"] == Kind.METRICS else 1
    return batch
