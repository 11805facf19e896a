"""The sender thread and the queue it drains: the one owner of the tracker's mutable state.

Every field of ``Sender`` (the queue, the stop and flush flags, the retry time, the outage state in
``guidance``) is read and written under ``self.cond`` only. The caller's side takes that lock for one
journal ``write()`` (``append``) or a look at the queue; the sender thread takes it to pick the next
batch, never while it waits for the disk or the tracker. ``flush`` and ``close`` wait by design, at most
their timeout.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from redsm5_hpo.errors import first_line
from redsm5_hpo.tracking.delivery import Delivery
from redsm5_hpo.tracking.guidance import OperatorGuidance
from redsm5_hpo.tracking.journal import Entry, Journal, Pending
from redsm5_hpo.tracking.records import (
    MAX_METRICS_PER_BATCH,
    BufferSettings,
    backoff_delay,
    is_permanent,
    replay_order,
    take_batch,
)
from redsm5_hpo.tracking.sanitize import mask_secrets

log = logging.getLogger(__name__)

REJECTED_FILE = "rejected.jsonl"


class Sender:
    def __init__(
        self, journal: Journal, delivery: Delivery, guidance: OperatorGuidance, settings: BufferSettings
    ) -> None:
        self.journal, self.delivery, self.guidance, self.settings = journal, delivery, guidance, settings
        self.rejected_path = journal.directory / REJECTED_FILE
        self.cond = threading.Condition()
        self.queue: deque[Pending] = deque()
        self.stopping = False
        self.closed = False
        self.flushing = 0
        """Callers waiting in ``flush()``: deliver at once, no linger."""
        self.oldest_at = 0.0
        """When the oldest queued record was queued (monotonic)."""
        self.deadline = float("inf")
        self.retry_at = 0.0
        """After a failure, no batch goes out before this time (monotonic): the backoff."""
        self.warn_at = settings.warn_bytes
        self.replayed = 0
        adopted = journal.adopt_orphans()
        if adopted:
            by_segment: dict[Path, list[Pending]] = {}
            for item in adopted:
                by_segment.setdefault(item.segment.path, []).append(item)
            self.queue.extend(replay_order(by_segment.values()))
        self.thread = threading.Thread(target=self._run, name="tracking-replay", daemon=True)
        self.thread.start()

    # -- the caller's side ---------------------------------------------------------------------------

    def append(self, entries: Iterable[Entry]) -> None:
        """One ``write()`` to the journal (plus an fsync with ``sync_interval_s=0``) under the lock."""
        now = time.monotonic()
        with self.cond:
            if self.closed:
                raise RuntimeError("tracker is closed")
            was_synced = self.journal.unsynced_since is None
            items = self.journal.append(entries, now)
            if not self.queue:
                self.oldest_at = now
            self.queue.extend(items)
            if len(self.queue) >= MAX_METRICS_PER_BATCH or (was_synced and self.journal.unsynced_since is not None):
                self.cond.notify_all()  # a full batch to send, or a group commit to schedule
            pending_bytes = self.journal.pending_bytes
            warn = pending_bytes > self.warn_at
            if warn:
                self.warn_at *= 2
        if warn:
            log.warning(
                "tracking journal %s holds %.0f MB not yet confirmed by %s (it keeps growing; nothing is dropped)",
                self.journal.directory,
                pending_bytes / 2**20,
                self.guidance.describe,
            )

    def queued(self, kinds: Iterable[str]) -> list[Entry]:
        """The queued records of these kinds, oldest first."""
        wanted = set(kinds)
        with self.cond:
            return [p.entry for p in self.queue if p.entry["kind"] in wanted]

    @property
    def pending(self) -> int:
        with self.cond:
            return len(self.queue)

    @property
    def in_outage(self) -> bool:
        with self.cond:
            return self.guidance.outage_since is not None

    def failed(self, error: BaseException) -> None:
        """A call on the caller's thread (a run start) failed: the outage begins."""
        with self.cond:
            self.guidance.failed(error)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every record is confirmed (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            self.flushing += 1
            self.cond.notify_all()
            try:
                while self.queue and time.monotonic() < deadline:
                    self.cond.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                return not self.queue
            finally:
                self.flushing -= 1

    def close(self, timeout_s: float) -> int | None:
        """Let the thread deliver what is left for up to ``timeout_s``, stop it and close the journal.
        Returns the records left in the journal; None when it was closed already."""
        with self.cond:
            if self.closed:
                return None
            self.stopping = True
            self.deadline = time.monotonic() + timeout_s
            self.cond.notify_all()
        self.thread.join(timeout_s + 1.0)
        with self.cond:
            self.closed = True
            return self.journal.close()

    # -- the sender thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.cond:
                sync, send = self._wait_for_work()
                fds = self.journal.take_unsynced() if sync else []
                batch = take_batch(self.queue) if send else []
                done = not batch and self.stopping and (not self.queue or time.monotonic() >= self.deadline)
            Journal.sync_unsynced(fds)  # outside the lock: the loop's appends never wait for the disk
            if done:
                return  # closing: everything sent, or the flush timeout passed (the rest stays journaled)
            if not batch:
                continue
            try:
                self.delivery.deliver([p.entry for p in batch])
            except Exception as e:
                if is_permanent(e):
                    self._reject(batch, e)
                    continue
                with self.cond:
                    self.guidance.failed(e)
                    self.retry_at = time.monotonic() + backoff_delay(self.guidance.failures, self.settings.backoff_s)
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
            if self.stopping and (not self.queue or now >= self.deadline):
                return sync, False
            urgent = self.stopping or self.flushing or len(self.queue) >= MAX_METRICS_PER_BATCH
            ready_at = max(self.retry_at, now if urgent else self.oldest_at + self.settings.linger_s)
            send = bool(self.queue) and now >= ready_at
            if sync or send:
                return sync, send
            timeout = ready_at - now if self.queue else 0.5
            if sync_in is not None:
                timeout = min(timeout, sync_in)
            if self.stopping:
                timeout = min(timeout, self.deadline - now)
            self.cond.wait(max(timeout, 0.001))

    def _confirm(self, batch: list[Pending]) -> None:
        with self.cond:
            if self.closed:
                return
            for _ in batch:
                self.queue.popleft()
            self.journal.confirm(batch)
            try:
                self.journal.rotate_if_confirmed(self.settings.rotate_bytes)
            except OSError as e:
                log.warning("tracking journal: cannot start a new segment (%s)", e.strerror)
            if self.queue and self.guidance.outage_since is None:
                self.oldest_at = time.monotonic()  # what came in meanwhile lingers for company too
            self.replayed += len(batch)
            self.guidance.recovered()
            self.cond.notify_all()

    def _reject(self, batch: list[Pending], error: BaseException) -> None:
        reason = mask_secrets(first_line(error))
        with open(self.rejected_path, "a", encoding="utf-8") as f:
            for p in batch:
                f.write(json.dumps({**p.entry, "rejected_because": reason}) + "\n")
        log.error(
            "%s refused %d tracking record(s) (%s); they are kept in %s",
            self.guidance.describe,
            len(batch),
            reason,
            self.rejected_path,
        )
        self._confirm(batch)
