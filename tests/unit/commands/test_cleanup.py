"""``cleanup`` on a real directory: what no study needs is listed with its size, kept on a dry run and
deleted with ``--execute``; anything touched recently is left alone."""

import os
import time

from redsm5_hpo.commands.cleanup import find_all_orphans
from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.config.schema import Config
from redsm5_hpo.layout import TrialDir


def _trial(root, name: str, age_s: float) -> TrialDir:
    files = TrialDir.of(root, name)
    files.checkpoints.mkdir(parents=True)
    (files.checkpoints / "weights.bin").write_bytes(b"x" * 1000)
    old = time.time() - age_s
    for path in (files.checkpoints / "weights.bin", files.checkpoints, files.path):
        os.utime(path, (old, old))
    return files


def test_an_old_unreferenced_trial_is_listed_then_deleted_and_a_recent_one_stays(tmp_path) -> None:
    config = apply_overrides(Config(), {"experiments_dir": str(tmp_path)})
    old, recent = _trial(tmp_path, "trial_old", 3 * 86400), _trial(tmp_path, "trial_new", 60)
    orphans = find_all_orphans(config, min_age_hours=24)
    assert [o.path for o in orphans.local] == [old.path] and orphans.in_bucket == []
    assert orphans.count == 1 and orphans.size_bytes >= 1000
    (line,) = list(orphans.lines())
    assert str(old.path) in line and "no study and no report references this trial" in line
    assert old.path.is_dir()  # listing deletes nothing
    assert orphans.remove() >= 1000
    assert not old.path.exists() and recent.path.is_dir()
    assert find_all_orphans(config, min_age_hours=24).count == 0
