"""The background checkpoint writer: one write at a time, off the training thread (as orbax's async
``CheckpointManager``). The training thread only submits a job and, before the next one, waits for the
previous; a job's error is raised in the training thread at its next contact with the writer."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable


class BackgroundWriter:
    def __init__(self, name: str = "checkpoint-writer"):
        self.name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def busy(self) -> bool:
        """A write is in flight."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job`` in the background, after the previous job has finished (its error is raised here). The
        job sees the caller's context variables (its log records name the caller's trial)."""
        self.wait()
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run, job), name=self.name, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Block until no job is in flight; raise the error of a failed one (once)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.raise_if_failed()

    def wait_for(self, timeout_s: float) -> bool:
        """As ``wait``, for at most ``timeout_s``: False when the job is still running (it goes on)."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                return False
        self.wait()
        return True

    def raise_if_failed(self) -> None:
        """Raise the error of a finished job that failed (once); cheap enough to call after every step."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self, job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as e:  # handed to the training thread, which decides
            self._error = e
