"""A graceful stop on SIGTERM or SIGINT (what ``docker stop``, Kubernetes and Ctrl-C send).

The first signal only records itself: the training loop raises ``StopRequested`` at its next batch and
the study before its next trial, so the running trial ends as interrupted and resumable, background
checkpoint writes commit, the tracking journal is flushed and the study lock released on the way out.
A second signal exits at once with the same code; every file this package writes is committed by an
atomic rename, so nothing is left half-written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested: int | None = None


class StopRequested(BaseException):
    """Raised where work can stop cleanly after a SIGTERM or SIGINT. A BaseException, so no ``except
    Exception`` records it as a failure."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM, as a shell reports them."""
        return 128 + self.signum


def requested() -> int | None:
    """The signal that asked for a stop, if one did."""
    return _requested


def raise_if_requested() -> None:
    if _requested is not None:
        raise StopRequested(_requested)


def _handle(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested is not None:
        os._exit(128 + signum)
    _requested = signum
    name = signal.Signals(signum).name
    # os.write, not logging: a handler can interrupt the main thread inside a logging call
    os.write(2, f"\n{name}: stopping at the next batch (send it again to exit at once)\n".encode())


@contextlib.contextmanager
def graceful_stop() -> Iterator[None]:
    """SIGTERM and SIGINT request a stop inside the block (main thread only; elsewhere a no-op); the
    previous handlers come back after it."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _requested = None
    for s in SIGNALS:
        signal.signal(s, _handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _requested = None
