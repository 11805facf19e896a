import json
import logging
import os
import subprocess
import sys

import pytest
import torch

from redsm5_hpo import faults
from redsm5_hpo.checkpoints.loading import best_first, load_first_valid
from redsm5_hpo.checkpoints.retention import Flags, RetentionPolicy, plan_retention
from redsm5_hpo.checkpoints.store import (
    MANIFEST,
    TRAINING_STATE,
    WEIGHTS,
    CheckpointError,
    CheckpointStore,
    load_training_state,
    load_weights,
    verify,
)
from redsm5_hpo.evaluation.reports import validate_report

ARCH = "linear4x2"


def save(store: CheckpointStore, model: torch.nn.Module, epoch: int, objective: float = 0.5, **extra):
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    meta = {
        "epoch": epoch,
        "step": epoch * 3,
        "objective": objective,
        "architecture": ARCH,
        "metrics": {"val_x": objective},
        "head_config": {},
        "trial_id": "t",
        **extra,
    }
    return store.save(model, {"optimizer": optimizer.state_dict(), "epoch": epoch}, meta)


def test_save_writes_a_schema_valid_manifest_and_round_trips(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    model = torch.nn.Linear(4, 2)
    saved = save(store, model, 1)
    manifest = json.loads((saved.path / MANIFEST).read_text())
    validate_report(manifest, "checkpoint_manifest")
    assert set(manifest["files"]) == {WEIGHTS, TRAINING_STATE}
    assert manifest["bytes"][WEIGHTS] == (saved.path / WEIGHTS).stat().st_size
    fresh = torch.nn.Linear(4, 2)
    load_weights(store.list()[0], fresh, ARCH)
    assert torch.equal(fresh.weight, model.weight)
    assert load_training_state(store.list()[0])["epoch"] == 1


def test_lean_checkpoint_keeps_weights_only_and_stays_valid(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    model = torch.nn.Linear(4, 2)
    lean = store.make_lean(save(store, model, 1))
    assert not (lean.path / TRAINING_STATE).exists() and not lean.resumable
    (listed,) = store.list()
    verify(listed)
    validate_report(listed.manifest, "checkpoint_manifest")
    assert listed.size_bytes == (lean.path / WEIGHTS).stat().st_size
    with pytest.raises(CheckpointError, match="weights only"):
        load_training_state(listed)
    flagged = store.write_flags(listed, Flags(True, True, False, True))
    assert json.loads((flagged.path / MANIFEST).read_text())["flags"]["co_best"] is True


def test_flipped_byte_is_detected(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    saved = save(store, torch.nn.Linear(4, 2), 1)
    data = bytearray((saved.path / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (saved.path / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        verify(store.list()[0])


def test_other_architecture_is_refused(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    save(store, torch.nn.Linear(4, 2), 1)
    with pytest.raises(CheckpointError, match="was written for linear4x2"):
        load_weights(store.list()[0], torch.nn.Linear(4, 2), "something-else")


@pytest.mark.parametrize("damage", ["flip_byte", "delete_manifest", "truncate_weights", "other_architecture"])
def test_loader_falls_back_to_previous_valid_checkpoint_and_says_so(tmp_path, caplog, damage) -> None:
    store = CheckpointStore(tmp_path)
    model = torch.nn.Linear(4, 2)
    first = save(store, model, 1, objective=0.4)
    expected = model.weight.detach().clone()
    newest = save(store, model, 2, objective=0.6)
    weights = newest.path / WEIGHTS
    if damage == "flip_byte":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0x01
        weights.write_bytes(bytes(data))
    elif damage == "delete_manifest":
        (newest.path / MANIFEST).unlink()
    elif damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        manifest = json.loads((newest.path / MANIFEST).read_text())
        (newest.path / MANIFEST).write_text(json.dumps({**manifest, "architecture": "bert-large"}))
    fresh = torch.nn.Linear(4, 2)
    with caplog.at_level(logging.WARNING):
        loaded = load_first_valid(best_first(store.list()), fresh, ARCH)
    assert loaded.path == first.path
    assert torch.equal(fresh.weight, expected)
    if damage != "delete_manifest":  # a manifest-less directory is not even a candidate
        assert str(newest.path) in caplog.text and f"falling back to {first.path}" in caplog.text


@pytest.mark.parametrize(
    ("error", "raised"), [("oom", torch.OutOfMemoryError), ("cuda_assert", torch.AcceleratorError)]
)
def test_a_gpu_failing_while_a_checkpoint_loads_is_raised_not_taken_for_a_corrupted_checkpoint(
    tmp_path, monkeypatch, caplog, error, raised
) -> None:
    store = CheckpointStore(tmp_path)
    model = torch.nn.Linear(4, 2)
    save(store, model, 1)
    save(store, model, 2)
    monkeypatch.setenv("REDSM5_FAULT", f"checkpoint_load:1:{error}")
    faults.reset()
    with caplog.at_level(logging.WARNING), pytest.raises(raised):
        load_first_valid(best_first(store.list()), torch.nn.Linear(4, 2), ARCH)
    assert "falling back" not in caplog.text and "unusable" not in caplog.text  # no checkpoint was blamed
    monkeypatch.delenv("REDSM5_FAULT")
    assert load_first_valid(best_first(store.list()), torch.nn.Linear(4, 2), ARCH).epoch == 2  # both are fine


def test_no_valid_checkpoint_lists_every_problem(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    saved = save(store, torch.nn.Linear(4, 2), 1)
    (saved.path / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        load_first_valid(store.list(), torch.nn.Linear(4, 2), ARCH)


def test_incomplete_directories_are_ignored_then_removed(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    save(store, torch.nn.Linear(4, 2), 1)
    (tmp_path / "epoch_0002").mkdir()  # a write that never got its manifest
    (tmp_path / ".tmp-epoch_0003-abc").mkdir()  # a crash mid-write
    assert [c.epoch for c in store.list()] == [1]
    removed = store.remove_incomplete()
    assert {p.name for p in removed} == {"epoch_0002", ".tmp-epoch_0003-abc"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001"]


CRASH_SCRIPT = """
import os, sys, torch
import redsm5_hpo.checkpoints.store as store_module
from redsm5_hpo.checkpoints.store import CheckpointStore
store = CheckpointStore(sys.argv[1])
def die_mid_write(*args, **kwargs):  # the weights file is written, the process dies before the rest
    os.kill(os.getpid(), 9)
store_module.torch.save = die_mid_write
store.save(torch.nn.Linear(4, 2), {"epoch": 1}, {"epoch": 1, "objective": 0.5})
"""


def test_process_killed_mid_write_leaves_nothing_loadable_and_is_cleaned(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path)], env={**os.environ}, check=False)
    assert result.returncode == -9
    leftovers = [p for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-epoch_0001")
    assert (leftovers[0] / WEIGHTS).is_file()
    store = CheckpointStore(tmp_path)
    assert store.list() == []
    store.remove_incomplete()
    assert list(tmp_path.iterdir()) == []


def test_a_minimized_objective_ranks_lowest_first_and_scores_negated(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    model = torch.nn.Linear(4, 2)
    for epoch, loss in enumerate([0.9, 0.3, 0.6], start=1):
        save(store, model, epoch, objective=loss, direction="minimize")
    checkpoints = store.list()
    for checkpoint in checkpoints:
        validate_report(checkpoint.manifest, "checkpoint_manifest")
    assert [c.epoch for c in best_first(checkpoints)] == [2, 3, 1]
    assert [c.record.score for c in checkpoints] == [-0.9, -0.3, -0.6]
    assert plan_retention([c.record for c in checkpoints], RetentionPolicy(keep_last_n=1, keep_best_k=1)).keep == {2, 3}
    maximized = CheckpointStore(tmp_path / "max")
    for epoch, value in enumerate([0.9, 0.3], start=1):
        save(maximized, model, epoch, objective=value)  # no direction: an older manifest, maximized
    assert [c.epoch for c in best_first(maximized.list())] == [1, 2]
