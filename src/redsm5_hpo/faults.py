"""Named fault points for crash tests: ``REDSM5_FAULT=<point>:<n>`` kills the process (SIGKILL) the n-th
time execution passes ``<point>``. Unset (always, outside tests) it costs one dict lookup.

Points: ``mid_epoch`` (after a training batch), ``mid_validation`` (after a validation batch),
``checkpoint_write`` (weights written, manifest not yet), ``checkpoint_commit`` (every file and the
manifest written and fsynced, the directory not renamed into place yet; both in the background writer),
``tracking_write`` (metrics written, the epoch's checkpoint not yet), ``resume_setup`` (a resume has
started, before training), ``setup_metrics_logged`` (a trial's set-up metrics logged, its first epoch not
begun), ``test_metrics_logged`` (the study's test metrics and plots logged, its report not yet written).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "REDSM5_FAULT"
_passes: Counter[str] = Counter()


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _passes[name] += 1
    if _passes[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
