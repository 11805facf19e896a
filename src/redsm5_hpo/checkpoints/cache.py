"""The local cache of checkpoints that are in the bucket (``remote.cache_max_mb``).

A local checkpoint whose copy in the bucket is current (``mirror.in_bucket``) may go: the oldest go first
until the checkpoints under the experiments directory take at most the budget. A checkpoint not yet in the
bucket (an upload waiting through an outage) and the protected ones (the running trial's resume point)
always stay, so the budget can be passed while the bucket is unreachable.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Collection
from pathlib import Path

from redsm5_hpo.checkpoints.disk import human_bytes, tree_bytes
from redsm5_hpo.checkpoints.mirror import in_bucket
from redsm5_hpo.checkpoints.store import read_manifest
from redsm5_hpo.layout import trial_dirs

log = logging.getLogger(__name__)


def evict(root: Path, budget_bytes: int, protect: Collection[Path] = ()) -> int:
    """Delete local copies of checkpoints already in the bucket, oldest first, until the checkpoints under
    ``root`` take at most ``budget_bytes``; return the bytes freed."""
    protected = {Path(p).resolve() for p in protect}
    local: list[tuple[float, Path, int, bool]] = []
    for trial in trial_dirs(root):
        for path in trial.checkpoints.glob("epoch_*"):
            manifest = read_manifest(path)
            try:
                mtime = path.stat().st_mtime
                size = tree_bytes(path)
            except FileNotFoundError:  # another process evicted or released it meanwhile
                continue
            evictable = manifest is not None and in_bucket(path, manifest) and path.resolve() not in protected
            local.append((mtime, path, size, evictable))
    total = sum(size for _, _, size, _ in local)
    freed = 0
    for _, path, size, evictable in sorted(local, key=lambda entry: entry[0]):
        if total - freed <= budget_bytes:
            break
        if evictable:
            shutil.rmtree(path, ignore_errors=True)
            freed += size
            log.info("evicted the local copy of %s (it is in the bucket)", path)
    if freed:
        log.info(
            "local checkpoint cache: %s after eviction (budget %s)",
            human_bytes(total - freed),
            human_bytes(budget_bytes),
        )
    return freed
