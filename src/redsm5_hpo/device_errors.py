"""What a failing GPU looks like: out of memory, or a CUDA error that leaves the process's CUDA context
unusable, and what a process does about the latter (``DeviceFailed``). Told apart from failures of the
data, the code or a checkpoint, which they must never be taken for."""

from __future__ import annotations

EXIT_DEVICE_FAILED = 5
"""The exit code of a process whose GPU failed (``DeviceFailed``): its trial is resumable."""
STICKY_CUDA_ERRORS = (
    "device-side assert triggered",
    "an illegal memory access was encountered",
    "unspecified launch failure",
    "an illegal instruction was encountered",
    "misaligned address",
    "uncorrectable ECC error encountered",
    "the launch timed out and was terminated",
)
"""CUDA errors after which every later CUDA call of the process fails too: the context is lost."""


class DeviceFailed(BaseException):
    """The GPU failed in a way that leaves this process's CUDA context unusable (``STICKY_CUDA_ERRORS``): the
    running trial stops resumable and the process ends (exit ``EXIT_DEVICE_FAILED``), so that a fresh
    process continues it, instead of every later trial failing in this one. A BaseException, so no
    ``except Exception`` takes it for a failed trial."""

    def __init__(self, error: BaseException):
        cause = (str(error).strip().splitlines() or [type(error).__name__])[0]
        super().__init__(f"the GPU failed ({cause}); this process cannot use it any more")


def is_sticky_cuda_error(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and any(text in str(error) for text in STICKY_CUDA_ERRORS)


def is_device_error(error: BaseException) -> bool:
    """Out of GPU memory or a lost CUDA context: the device failed, not the data, code or checkpoint."""
    import torch  # here, not at the top: the command line imports this module before it needs torch

    return isinstance(error, torch.OutOfMemoryError) or is_sticky_cuda_error(error)
