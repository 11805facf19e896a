"""The tracking journal: append-only JSON lines, kept until the tracker confirms each line.

One segment file per process (``<uuid>.jsonl`` under the journal directory), held with an ``flock`` for
as long as the process lives. Beside it, ``<uuid>.ack`` holds how many of its lines the tracker has
confirmed. A segment whose owner died is unlocked: the next process to open the journal adopts it and
replays its unconfirmed lines. A segment is deleted only once every line in it is confirmed.

Durability is a group commit: ``append`` returns once its lines are ``write()``n, which a killed process
cannot lose (they are in the kernel); ``sync_unsynced`` fsyncs what was written since the last sync and is
called by the tracker's sender thread at most ``sync_interval_s`` after a write, so a power or kernel
failure loses at most that window. With ``sync_interval_s=0`` every append fsyncs before it returns.

A line is one operation: ``{"kind": "metrics", "run_id", "step", "timestamp", "values": {metric: value}}``
(one log call: each metric is a record (run_id, metric, step, value, timestamp), whose key is (run_id,
metric, step): the tracker gets one record per key, see ``records.metric_key``), or ``create_run`` /
``params`` / ``tags`` / ``artifact`` / ``status`` with their fields. Lines of earlier versions,
``{"kind": "metric", "run_id", "metric", "step", "value", "timestamp"}``, replay as well.
"""

from __future__ import annotations

import enum
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from redsm5_hpo.atomic_files import fsync_path

log = logging.getLogger(__name__)

Entry = dict[str, Any]


@dataclass
class Segment:
    path: Path
    fd: int
    """Open descriptor holding the segment's ``flock``."""
    lines: int = 0
    acked: int = 0
    owned: bool = True
    """Written by this process (False: adopted from a dead one)."""
    sizes: list[int] = field(default_factory=list)
    """Byte size of each unconfirmed line, oldest first."""
    bytes_written: int = 0
    """Size of the file: every complete line in it (appends are the only writes)."""

    @property
    def ack_path(self) -> Path:
        return self.path.with_suffix(".ack")


class Pending(NamedTuple):
    segment: Segment
    position: int
    """0-based line number in its segment."""
    entry: Entry


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode
"""One C-accelerated encoder for every line (ASCII only: characters are bytes)."""


class Kind(enum.StrEnum):
    """What a journal line records: the ``kind`` of every line, one operation on the tracker each (their
    delivery: ``delivery.DELIVER``)."""

    CREATE_RUN = "create_run"
    PARAMS = "params"
    METRICS = "metrics"
    """One log call's metrics at one step."""
    METRIC = "metric"
    """One metric (lines of earlier versions, and ``expand_metrics``'s records)."""
    TAGS = "tags"
    ARTIFACT = "artifact"
    DATASET = "dataset"
    STATUS = "status"


METRIC_KINDS = frozenset({Kind.METRICS, Kind.METRIC})


def expand_metrics(entry: Entry) -> list[Entry]:
    """The single-metric records ``{run_id, metric, step, value, timestamp}`` of a metric line: a
    ``metrics`` line (one per log call) holds several, a ``metric`` line (earlier versions) one."""
    if entry["kind"] == Kind.METRIC:
        return [entry]
    run_id, step, timestamp = entry["run_id"], entry["step"], entry["timestamp"]
    return [
        {"kind": Kind.METRIC, "run_id": run_id, "metric": k, "step": step, "value": v, "timestamp": timestamp}
        for k, v in entry["values"].items()
    ]


class Journal:
    """The segments of one journal directory that this process owns or has adopted. Not thread-safe: the
    tracker calls it under its lock (``sync_unsynced`` excepted, see there)."""

    def __init__(self, directory: Path, sync_interval_s: float = 0.1):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sync_interval_s = sync_interval_s
        self.active = self._open_segment(self.directory / f"{uuid.uuid4().hex}.jsonl", owned=True)
        self.segments: list[Segment] = [self.active]
        self.unsynced_since: float | None = None
        """When (monotonic) the oldest line not yet fsynced was written; None when all are."""
        self._pending_bytes = 0

    def append(self, entries: Iterable[Entry], now: float = 0.0) -> list[Pending]:
        """Write ``entries`` as one append (fsynced at once only with ``sync_interval_s=0``); return them as
        pending items. ``now``: the caller's monotonic clock, for the group commit's deadline."""
        segment = self.active
        entries = list(entries)
        lines = [_encode(e) + "\n" for e in entries]  # ASCII: characters are bytes
        data = "".join(lines).encode()
        if segment.fd >= 0:
            try:
                written = os.write(segment.fd, data)
                if written != len(data):
                    raise OSError(28, "short write (No space left on device?)")
                if self.sync_interval_s == 0:
                    os.fsync(segment.fd)
                elif self.unsynced_since is None:
                    self.unsynced_since = now
            except OSError as e:  # e.g. a full disk: never fail the caller, never leave half a line
                os.ftruncate(segment.fd, segment.bytes_written)
                log.error(
                    "tracking journal: cannot write %s (%s); records are held in memory until the tracker "
                    "confirms them, and are lost if this process dies first",
                    segment.path,
                    e.strerror,
                )
                segment = self.active = self._memory_segment()
                self.segments.append(segment)
        items = [Pending(segment, segment.lines + i, e) for i, e in enumerate(entries)]
        segment.lines += len(lines)
        sizes = [len(x) for x in lines]
        segment.sizes.extend(sizes)
        segment.bytes_written += len(data) if segment.fd >= 0 else 0
        self._pending_bytes += sum(sizes)
        return items

    def sync_due(self, now: float) -> float | None:
        """Seconds until written lines must be fsynced (<= 0: now); None when nothing waits."""
        if self.unsynced_since is None:
            return None
        return self.unsynced_since + self.sync_interval_s - now

    def take_unsynced(self) -> list[int]:
        """Duplicates of the descriptors of segments written since the last sync, for ``sync_unsynced``; the
        journal counts them as synced from now on. Cheap: call it under the tracker's lock."""
        if self.unsynced_since is None:
            return []
        self.unsynced_since = None
        fds = []
        for segment in self.segments:
            if segment.fd >= 0 and segment.owned:
                try:
                    fds.append(os.dup(segment.fd))
                except OSError as e:  # closed under us: nothing left to make durable there
                    log.debug("tracking journal: %s not synced (%s)", segment.path.name, e.strerror)
        return fds

    @staticmethod
    def sync_unsynced(fds: list[int]) -> None:
        """fsync (then close) what ``take_unsynced`` returned, outside any lock: appends go on meanwhile."""
        for fd in fds:
            try:
                os.fsync(fd)
            except OSError as e:
                log.warning("tracking journal: fsync failed (%s); the lines stay written, not yet durable", e.strerror)
            finally:
                os.close(fd)

    def adopt_orphans(self) -> list[Pending]:
        """Segments of processes that died (unlocked), with their unconfirmed lines in file order."""
        adopted: list[Pending] = []
        known = {s.path for s in self.segments}
        for path in sorted(self.directory.glob("*.jsonl")):
            if path in known:
                continue
            try:
                segment = self._open_segment(path, owned=False)
            except BlockingIOError:
                continue  # a live process owns it
            entries = _read_lines(path)
            segment.lines = len(entries)
            segment.acked = _read_ack(segment.ack_path)
            unconfirmed = entries[segment.acked :]
            segment.sizes = [len(json.dumps(e)) + 1 for e in unconfirmed]
            self._pending_bytes += sum(segment.sizes)
            os.fsync(segment.fd)  # its owner may have died before its group commit
            self.segments.append(segment)
            adopted.extend(Pending(segment, segment.acked + i, e) for i, e in enumerate(unconfirmed))
            if unconfirmed:
                log.info("tracking journal: adopted %d unconfirmed record(s) from %s", len(unconfirmed), path.name)
        for stale in self.directory.glob("*.ack"):
            if not stale.with_suffix(".jsonl").exists():
                stale.unlink(missing_ok=True)
        return adopted

    def confirm(self, items: Iterable[Pending]) -> None:
        """The tracker holds ``items`` (a prefix of each segment's unconfirmed lines): record it."""
        last: dict[Path, tuple[Segment, int]] = {}
        for item in items:
            previous = last.get(item.segment.path)
            if previous is None or item.position > previous[1]:
                last[item.segment.path] = (item.segment, item.position)
        for segment, index in last.values():
            done = index + 1 - segment.acked
            if done <= 0:
                continue
            self._pending_bytes -= sum(segment.sizes[:done])
            del segment.sizes[:done]
            segment.acked = index + 1
            if segment.fd < 0:
                continue  # held in memory only (the disk refused the append)
            _write_ack(segment.ack_path, segment.acked)
            if segment.acked == segment.lines and not segment.owned:
                self._remove(segment)

    def rotate_if_confirmed(self, min_bytes: int) -> None:
        """Start a new active segment when every line of the current one (at least ``min_bytes``) is confirmed."""
        segment = self.active
        size = segment.bytes_written if segment.fd >= 0 else min_bytes
        if segment.acked == segment.lines and size >= max(min_bytes, 1):
            self.active = self._open_segment(self.directory / f"{uuid.uuid4().hex}.jsonl", owned=True)
            self.segments.append(self.active)
            self._remove(segment)

    @property
    def pending_bytes(self) -> int:
        """Bytes of unconfirmed lines (kept as a running total: the tracker reads it at every call)."""
        return self._pending_bytes

    @property
    def pending_count(self) -> int:
        return sum(s.lines - s.acked for s in self.segments)

    def close(self) -> int:
        """Release every segment; delete the fully confirmed ones. Returns unconfirmed lines left behind."""
        left = 0
        for segment in list(self.segments):
            if segment.acked == segment.lines:
                self._remove(segment)
            else:
                left += segment.lines - segment.acked
                if segment.fd >= 0:
                    os.fsync(segment.fd)  # what is left waits for the next process: make it durable
                    os.close(segment.fd)
        self.segments.clear()
        return left

    def _open_segment(self, path: Path, owned: bool) -> Segment:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise
        if owned:
            fsync_path(self.directory)
        return Segment(path, fd, owned=owned)

    def _memory_segment(self) -> Segment:
        return Segment(self.directory / f"memory-{uuid.uuid4().hex}", fd=-1)

    def _remove(self, segment: Segment) -> None:
        if segment.fd >= 0:
            segment.path.unlink(missing_ok=True)
            segment.ack_path.unlink(missing_ok=True)
            os.close(segment.fd)
        if segment in self.segments:
            self.segments.remove(segment)


def pending_in(directory: Path) -> int:
    """Unconfirmed lines in every segment of ``directory`` (live or orphaned), without adopting any."""
    total = 0
    for path in Path(directory).glob("*.jsonl"):
        total += max(0, len(_read_lines(path)) - _read_ack(path.with_suffix(".ack")))
    return total


def _read_lines(path: Path) -> list[Entry]:
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith("\n"):
                log.warning("tracking journal %s: line %d was cut off mid-write; skipped", path.name, number)
                break  # the process died mid-append: the call that wrote it never returned
            entries.append(json.loads(line))
    return entries


def _read_ack(path: Path) -> int:
    try:
        return int(path.read_text(encoding="utf-8").strip() or 0)
    except FileNotFoundError:
        return 0


def _write_ack(path: Path, count: int) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(str(count), encoding="utf-8")
    os.replace(temp, path)
