"""A trial's checkpoints in a bucket, against a real S3-compatible server (moto) through s3fs, and a
``file://`` share: the commit protocol, downloads checked against the manifest, retention in the bucket, the
local cache."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from redsm5_hpo.checkpoints.cache import evict
from redsm5_hpo.checkpoints.errors import CheckpointError
from redsm5_hpo.checkpoints.loading import load_first_valid, newest_resumable_first
from redsm5_hpo.checkpoints.mirror import IN_BUCKET
from redsm5_hpo.checkpoints.store import TRAINING_STATE, WEIGHTS, load_training_state, trial_store
from redsm5_hpo.config.schema import RemoteConfig
from redsm5_hpo.layout import TrialDir
from redsm5_hpo.remote import Bucket, open_bucket
from tests.helpers.s3_server import S3, s3  # noqa: F401 (the fixture)

ARCH = "linear4x2"


def bucket_of(s3: S3) -> Bucket:  # noqa: F811
    bucket = open_bucket(RemoteConfig(uri=s3.uri, retry_s=2.0))
    assert bucket is not None
    return bucket


def save(store, epoch: int, objective: float, seed: int = 0):
    torch.manual_seed(seed + epoch)
    model = torch.nn.Linear(4, 2)
    meta = {"epoch": epoch, "objective": objective, "architecture": ARCH}
    return store.save(model, {"epoch": epoch, "optimizer": {"lr": 0.1}}, meta), model


def test_a_synced_checkpoint_is_in_the_bucket_objects_and_manifest(s3, tmp_path) -> None:  # noqa: F811
    trial = TrialDir.of(tmp_path, "a")
    store = trial_store(trial, bucket_of(s3))
    saved, _ = save(store, 1, 0.5)
    assert store.sync() == []
    prefix = "trial_a/checkpoints/epoch_0001/"
    assert [k for k in s3.objects() if k.startswith(prefix)] == [
        f"{prefix}manifest.json",
        f"{prefix}model.safetensors",
        f"{prefix}training_state.pt",
    ]
    assert (saved.path / IN_BUCKET).is_file()  # the local copy knows it may go
    assert store.sync() == []  # nothing changed: nothing uploaded again


def test_a_kill_between_objects_and_manifest_leaves_residue_that_the_next_start_removes(s3, tmp_path) -> None:  # noqa: F811
    """A real process SIGKILLed at ``remote_commit`` (objects uploaded, manifest not): the bucket holds objects
    without a manifest, which are never listed and go at the next start; the local copy still resumes."""
    script = textwrap.dedent(
        f"""
        import torch
        from redsm5_hpo.checkpoints.store import trial_store
        from redsm5_hpo.config.schema import RemoteConfig
        from redsm5_hpo.layout import TrialDir
        from redsm5_hpo.remote import open_bucket
        store = trial_store(TrialDir.of({str(tmp_path)!r}, "a"), open_bucket(RemoteConfig(uri={s3.uri!r})))
        store.save(torch.nn.Linear(4, 2), {{"epoch": 1}}, {{"epoch": 1, "objective": 0.5, "architecture": "{ARCH}"}})
        store.sync()
        """
    )
    env = {**os.environ, "REDSM5_FAULT": "remote_commit:1"}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    residue = [k for k in s3.objects() if k.startswith("trial_a/")]
    assert "trial_a/checkpoints/epoch_0001/model.safetensors" in residue
    assert "trial_a/checkpoints/epoch_0001/manifest.json" not in residue

    store = trial_store(TrialDir.of(tmp_path, "a"), bucket_of(s3))
    store.remove_incomplete()  # what a trial's start does
    assert [k for k in s3.objects() if k.startswith("trial_a/")] == []
    (local,) = newest_resumable_first(store.list())
    model = torch.nn.Linear(4, 2)
    assert load_first_valid([local], model, ARCH) == local and load_training_state(local)["epoch"] == 1
    assert store.sync() == []  # and the next save uploads it whole
    assert "trial_a/checkpoints/epoch_0001/manifest.json" in s3.objects()


def test_an_evicted_checkpoint_is_downloaded_and_a_corrupted_object_falls_back(s3, tmp_path, caplog) -> None:  # noqa: F811
    trial = TrialDir.of(tmp_path, "a")
    store = trial_store(trial, bucket_of(s3))
    first, _ = save(store, 1, 0.4)
    second, trained = save(store, 2, 0.6)
    store.sync()
    assert evict(tmp_path, 0) > 0  # both are in the bucket: both local copies go
    assert not first.path.exists() and not second.path.exists()

    listed = trial_store(trial, bucket_of(s3)).list()  # a fresh process: from the bucket's manifests
    assert [c.epoch for c in listed] == [1, 2]
    model = torch.nn.Linear(4, 2)
    assert load_first_valid(listed[::-1], model, ARCH).epoch == 2
    assert torch.equal(model.weight, trained.weight)  # downloaded, hash-checked, loaded

    evict(tmp_path, 0)
    s3.fs().pipe(f"{s3.bucket}/exp/trial_a/checkpoints/epoch_0002/{WEIGHTS}", b"not the weights")
    listed = trial_store(trial, bucket_of(s3)).list()
    with caplog.at_level("WARNING"):
        loaded = load_first_valid(listed[::-1], torch.nn.Linear(4, 2), ARCH)
    assert loaded.epoch == 1  # the corrupted newest one is refused
    assert "does not match its SHA-256" in caplog.text and "falling back to" in caplog.text
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_first_valid(listed[1:], torch.nn.Linear(4, 2), ARCH)


def test_retention_acts_on_checkpoints_only_in_the_bucket(s3, tmp_path) -> None:  # noqa: F811
    trial = TrialDir.of(tmp_path, "a")
    store = trial_store(trial, bucket_of(s3))
    save(store, 1, 0.4)
    save(store, 2, 0.6)
    store.sync()
    evict(tmp_path, 0)
    store = trial_store(trial, bucket_of(s3))
    old, best = store.list()
    store.delete(old)
    lean = store.make_lean(best)
    assert not lean.resumable
    keys = [k for k in s3.objects() if k.startswith("trial_a/")]
    assert keys == ["trial_a/checkpoints/epoch_0002/manifest.json", "trial_a/checkpoints/epoch_0002/model.safetensors"]
    (listed,) = trial_store(trial, bucket_of(s3)).list()  # the bucket's manifest says so too
    assert listed.epoch == 2 and not listed.resumable
    with pytest.raises(CheckpointError, match="weights only"):
        load_training_state(listed)


def test_a_local_change_reaches_the_bucket_at_the_next_sync(s3, tmp_path) -> None:  # noqa: F811
    """A checkpoint slimmed while its local copy is there: the next sync uploads the new manifest and removes
    the object it no longer lists, without uploading the weights again."""
    trial = TrialDir.of(tmp_path, "a")
    store = trial_store(trial, bucket_of(s3))
    saved, _ = save(store, 1, 0.5)
    store.sync()
    weights_key = f"{s3.bucket}/exp/trial_a/checkpoints/epoch_0001/{WEIGHTS}"
    before = s3.fs().info(weights_key)["LastModified"]
    store.make_lean(saved)
    assert store.sync() == []
    assert f"trial_a/checkpoints/epoch_0001/{TRAINING_STATE}" not in s3.objects()
    assert s3.fs().info(weights_key)["LastModified"] == before
    (listed,) = trial_store(trial, bucket_of(s3)).list()
    assert not listed.resumable


def test_the_cache_keeps_the_protected_and_what_is_not_in_the_bucket(s3, tmp_path) -> None:  # noqa: F811
    trial = TrialDir.of(tmp_path, "a")
    store = trial_store(trial, bucket_of(s3))
    first, _ = save(store, 1, 0.4)
    second, _ = save(store, 2, 0.5)
    store.sync()
    third, _ = save(store, 3, 0.6)  # not uploaded yet
    evict(tmp_path, 0, protect=[second.path])
    assert not first.path.exists()
    assert second.path.exists() and third.path.exists()
    size = sum(f.stat().st_size for f in second.path.iterdir())
    evict(tmp_path, 10 * size)  # under budget: nothing goes
    assert second.path.exists()


def test_a_mounted_share_through_file_urls(tmp_path) -> None:
    share = tmp_path / "share"
    bucket = open_bucket(RemoteConfig(uri=f"file://{share}"))
    assert bucket is not None
    trial = TrialDir.of(tmp_path / "experiments", "a")
    store = trial_store(trial, bucket)
    _, trained = save(store, 1, 0.5)
    store.sync()
    assert (share / "trial_a/checkpoints/epoch_0001/manifest.json").is_file()
    evict(tmp_path / "experiments", 0)
    (listed,) = trial_store(trial, bucket).list()
    model = torch.nn.Linear(4, 2)
    load_first_valid([listed], model, ARCH)
    assert torch.equal(model.weight, trained.weight)


def test_cleanup_finds_the_orphans_in_the_bucket(s3, tmp_path) -> None:  # noqa: F811
    """Residue of an interrupted upload, a finished trial's checkpoint its report does not reference, and a
    trial no study knows; a running trial's checkpoints and the referenced one stay."""
    import json

    from redsm5_hpo.checkpoints.cleanup import find_bucket_orphans, remove_bucket_orphans

    bucket = bucket_of(s3)
    for trial in ("done", "running", "stray"):
        store = trial_store(TrialDir.of(tmp_path, trial), bucket)
        save(store, 1, 0.4)
        save(store, 2, 0.6)
        store.sync()
    fs, prefix = s3.fs(), f"{s3.bucket}/exp"
    fs.pipe(f"{prefix}/trial_done/checkpoints/epoch_0003/model.safetensors", b"half an upload")
    report = {"checkpoint_references": [str(tmp_path / "trial_done/checkpoints/epoch_0002")]}
    fs.pipe(f"{prefix}/trial_done/evaluation_report.json", json.dumps(report).encode())
    states = {"trial_done": "COMPLETE", "trial_running": "RUNNING"}
    assert find_bucket_orphans(bucket, states, min_age_s=3600) == []  # everything is too recent
    found = {(o.key, o.reason.split(";")[0].split(" (")[0]) for o in find_bucket_orphans(bucket, states, min_age_s=0)}
    assert found == {
        ("trial_done/checkpoints/epoch_0001", "finished trial"),
        ("trial_done/checkpoints/epoch_0003", "checkpoint without a manifest"),
        ("trial_stray", "no study and no report references this trial"),
    }
    assert remove_bucket_orphans(bucket, find_bucket_orphans(bucket, states, min_age_s=0)) > 0
    left = {k.split("/")[0] + "/" + k.split("/")[2] for k in s3.objects() if "/checkpoints/" in k}
    assert left == {"trial_done/epoch_0002", "trial_running/epoch_0001", "trial_running/epoch_0002"}
