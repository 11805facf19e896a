"""``redsm5-hpo cleanup``: the orphaned checkpoints and trial directories on this disk and in the study's
bucket, listed with their sizes, and deleted with ``--execute``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from redsm5_hpo.checkpoints.cleanup import (
    BucketOrphan,
    Orphan,
    find_bucket_orphans,
    find_orphans,
    remove_bucket_orphans,
    remove_orphans,
)
from redsm5_hpo.checkpoints.disk import human_bytes
from redsm5_hpo.config.schema import Config
from redsm5_hpo.hpo.inventory import trial_states
from redsm5_hpo.layout import STUDY_PREFIX, experiments_root
from redsm5_hpo.pipeline.mirroring import pull
from redsm5_hpo.remote import Bucket, open_bucket


@dataclass(frozen=True)
class Orphans:
    """What no study needs any more, on this disk and in the bucket (``remote.uri``)."""

    local: list[Orphan]
    bucket: Bucket | None
    in_bucket: list[BucketOrphan]

    @property
    def count(self) -> int:
        return len(self.local) + len(self.in_bucket)

    @property
    def size_bytes(self) -> int:
        return sum(o.size_bytes for o in self.local) + sum(o.size_bytes for o in self.in_bucket)

    def lines(self) -> Iterator[str]:
        for orphan in self.local:
            yield f"{human_bytes(orphan.size_bytes):>10}  {orphan.path}  ({orphan.reason})"
        for found in self.in_bucket:
            where = self.bucket.url(found.key) if self.bucket else found.key
            yield f"{human_bytes(found.size_bytes):>10}  {where}  ({found.reason})"

    def remove(self) -> int:
        """Delete them all; the bytes freed."""
        freed = remove_orphans(self.local)
        return freed + (remove_bucket_orphans(self.bucket, self.in_bucket) if self.bucket else 0)


def find_all_orphans(config: Config, min_age_hours: float) -> Orphans:
    """The orphans under ``experiments_dir`` and in the bucket, none touched within ``min_age_hours``. The
    studies in the bucket (pulled here first) say which of its trials are still needed."""
    root = experiments_root(config)
    storages = [config.hpo.storage] if config.hpo.storage else []
    bucket = open_bucket(config.remote)
    if bucket is not None:
        for name in [d for d in bucket.list_dirs("") if d.startswith(STUDY_PREFIX)]:
            pull(bucket, root, name)
    states = trial_states(root, storages)
    min_age_s = min_age_hours * 3600
    local = find_orphans(root, states, min_age_s=min_age_s)
    in_bucket = find_bucket_orphans(bucket, {p.name: s for p, s in states.items()}, min_age_s) if bucket else []
    return Orphans(local, bucket, in_bucket)
