import json

import pytest
import torch

from redsm5_hpo.checkpoints.store import WEIGHTS, CheckpointError, CheckpointStore, load_weights, verify


def save(store: CheckpointStore, model: torch.nn.Module, epoch: int, objective: float = 0.5):
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    return store.save(
        model,
        {"optimizer": optimizer.state_dict(), "epoch": epoch},
        {"epoch": epoch, "objective": objective, "architecture": "linear4x2"},
    )


def test_save_writes_manifest_with_hashes_and_round_trips(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    model = torch.nn.Linear(4, 2)
    saved = save(store, model, 1)
    manifest = json.loads((saved.path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.safetensors", "training_state.pt"}
    assert manifest["epoch"] == 1 and "created_at" in manifest and "code_version" in manifest
    fresh = torch.nn.Linear(4, 2)
    load_weights(store.list()[0], fresh, "linear4x2")
    assert torch.equal(fresh.weight, model.weight)
    state = torch.load(saved.path / "training_state.pt", weights_only=True)
    assert state["epoch"] == 1


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


def test_directories_without_manifest_and_temp_leftovers_are_ignored(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    save(store, torch.nn.Linear(4, 2), 1)
    (tmp_path / "epoch_0002").mkdir()  # a write that never got its manifest
    (tmp_path / ".tmp-epoch_0003-abc").mkdir()  # a crash mid-write
    assert [c.epoch for c in CheckpointStore(tmp_path).list()] == [1]
    assert not (tmp_path / ".tmp-epoch_0003-abc").exists()
