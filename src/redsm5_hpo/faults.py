"""Named fault points for crash tests: ``REDSM5_FAULT=<point>:<n>`` kills the process (SIGKILL) the n-th
time execution passes ``<point>``; ``REDSM5_FAULT=<point>:<n>:<error>`` raises that error there instead, as
the GPU would: ``oom`` (``torch.OutOfMemoryError``) or ``cuda_assert`` (a device-side assert, which leaves
the process's CUDA context unusable). With ``REDSM5_FAULT_ONCE=<path>`` as well, only the first process to
create ``<path>`` fires (every process of a study inherits the variable). Unset (always, outside tests) a
point costs one dict lookup.

Points: ``mid_epoch`` (after a training batch), ``mid_validation`` (after a validation batch),
``checkpoint_write`` (weights written, manifest not yet), ``checkpoint_commit`` (every file and the
manifest written and fsynced, the directory not renamed into place yet; both in the background writer),
``checkpoint_load`` (a checkpoint's weights about to be loaded), ``tracking_write`` (metrics written, the
epoch's checkpoint not yet), ``resume_setup`` (a resume has started, before training),
``setup_metrics_logged`` (a trial's set-up metrics logged, its first epoch not begun),
``test_metrics_logged`` (the study's test metrics and plots logged, its report not yet written),
``remote_commit`` (a checkpoint's objects uploaded to the bucket, its manifest not yet).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "REDSM5_FAULT"
ONCE_ENV = "REDSM5_FAULT_ONCE"
_passes: Counter[str] = Counter()


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, rest = spec.partition(":")
    if point != name:
        return
    count, _, error = rest.partition(":")
    _passes[name] += 1
    if _passes[name] != int(count or 1) or not _first_process():
        return
    if error:
        raise _error(error)
    os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Count every point from zero again (tests that fire several faults in one process)."""
    _passes.clear()


def _first_process() -> bool:
    marker = os.environ.get(ONCE_ENV)
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _error(kind: str) -> BaseException:
    import torch  # only when a fault fires

    if kind == "oom":
        return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (fault point)")
    if kind == "cuda_assert":
        return torch.AcceleratorError(
            "CUDA error: device-side assert triggered\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side "
            "assertions. (fault point)"
        )
    raise ValueError(f"{ENV}: unknown error {kind!r} (oom or cuda_assert)")
