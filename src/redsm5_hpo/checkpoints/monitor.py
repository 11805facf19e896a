"""The disk guard: a background thread that watches free space on the experiments filesystem.

It only observes and reports (INFO every ``info_interval_s`` while all is well, WARNING below the
critical share, ERROR below the error share) and exposes the latest level; acting on it is the
checkpoint manager's job, right before each save. The bytes of a checkpoint being written in the
background count as already used (``in_flight_bytes``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from redsm5_hpo.checkpoints.disk import DiskLevel, DiskUsage, Thresholds, assess, disk_usage, human_bytes

log = logging.getLogger(__name__)


class DiskMonitor:
    def __init__(
        self,
        path: Path,
        thresholds: Thresholds,
        interval_s: float = 60.0,
        info_interval_s: float = 600.0,
        usage_fn: Callable[[Path], DiskUsage] = disk_usage,
    ):
        self.path = Path(path)
        self.thresholds = thresholds
        self.interval_s = interval_s
        self.info_interval_s = info_interval_s
        self.usage_fn = usage_fn
        self.level = DiskLevel.OK
        self.in_flight_bytes = 0
        """Bytes of the checkpoint the background writer is writing (set by the checkpoint manager)."""
        self.checks = 0
        self._last_info = -float("inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def critical(self) -> bool:
        """True while free space is below the critical share (10% by default)."""
        return self.level >= DiskLevel.CRITICAL

    def check_now(self) -> DiskLevel:
        measured = self.usage_fn(self.path)
        # conservative while a write is in flight: its bytes already on disk are counted twice
        free = max(0, measured.free_bytes - self.in_flight_bytes)
        usage = DiskUsage(measured.total_bytes, measured.used_bytes + measured.free_bytes - free, free)
        self.level = assess(usage, self.thresholds)
        self.checks += 1
        summary = (
            f"{human_bytes(usage.free_bytes)} free of {human_bytes(usage.total_bytes)} ({usage.free_fraction:.1%})"
        )
        if self.level == DiskLevel.ERROR:
            log.error("disk space critically low under %s: %s", self.path, summary)
        elif self.level == DiskLevel.CRITICAL:
            log.warning(
                "disk space below %.0f%% under %s: %s; pruning aggressively before each save",
                100 * self.thresholds.critical_free_fraction,
                self.path,
                summary,
            )
        elif time.monotonic() - self._last_info >= self.info_interval_s:
            log.info("disk space under %s: %s", self.path, summary)
            self._last_info = time.monotonic()
        return self.level

    def start(self) -> DiskMonitor:
        self.check_now()
        self._thread = threading.Thread(target=self._run, name="disk-guard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> DiskMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_now()
            except OSError as e:  # the filesystem vanished or is unreadable: say so, keep watching
                log.error("disk guard cannot read usage of %s: %s", self.path, e)
