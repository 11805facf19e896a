"""The tracking journal: append-only, fsynced JSON lines, kept until the tracker confirms each line.

One segment file per process (``<uuid>.jsonl`` under the journal directory), held with an ``flock`` for
as long as the process lives. Beside it, ``<uuid>.ack`` holds how many of its lines the tracker has
confirmed. A segment whose owner died is unlocked: the next process to open the journal adopts it and
replays its unconfirmed lines. A segment is deleted only once every line in it is confirmed.

A line is one operation: ``{"kind": "metric", "run_id", "metric", "step", "value", "timestamp"}`` or
``create_run`` / ``params`` / ``tags`` / ``artifact`` / ``status`` with their fields.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    @property
    def ack_path(self) -> Path:
        return self.path.with_suffix(".ack")

    @property
    def pending_bytes(self) -> int:
        return sum(self.sizes)


@dataclass(frozen=True)
class Pending:
    segment: Segment
    index: int
    entry: Entry


class Journal:
    """The segments of one journal directory that this process owns or has adopted."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.active = self._open_segment(self.directory / f"{uuid.uuid4().hex}.jsonl", owned=True)
        self.segments: list[Segment] = [self.active]

    def append(self, entries: Iterable[Entry]) -> list[Pending]:
        """Write ``entries`` as one fsynced append; return them as pending items."""
        segment = self.active
        entries = list(entries)
        lines = [json.dumps(e, separators=(",", ":"), allow_nan=True) + "\n" for e in entries]
        data = "".join(lines).encode()
        if segment.fd >= 0:
            size = os.fstat(segment.fd).st_size
            try:
                os.write(segment.fd, data)
                os.fsync(segment.fd)
            except OSError as e:  # e.g. a full disk: never fail the caller, never leave half a line
                os.ftruncate(segment.fd, size)
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
        segment.sizes.extend(len(x.encode()) for x in lines)
        return items

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
            if previous is None or item.index > previous[1]:
                last[item.segment.path] = (item.segment, item.index)
        for segment, index in last.values():
            done = index + 1 - segment.acked
            if done <= 0:
                continue
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
        size = os.fstat(segment.fd).st_size if segment.fd >= 0 else min_bytes
        if segment.acked == segment.lines and size >= max(min_bytes, 1):
            self.active = self._open_segment(self.directory / f"{uuid.uuid4().hex}.jsonl", owned=True)
            self.segments.append(self.active)
            self._remove(segment)

    @property
    def pending_bytes(self) -> int:
        return sum(s.pending_bytes for s in self.segments)

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
