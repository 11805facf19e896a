"""Asynchronous checkpoint writes: the snapshot is taken before the loop goes on, one write at a time in
the background, errors raised in the training thread, in-flight bytes seen by the disk guard."""

import threading
import time

import pytest
import torch

from redsm5_hpo.checkpoints.disk import DiskLevel, DiskUsage, Thresholds
from redsm5_hpo.checkpoints.manager import CheckpointManager
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.checkpoints.retention import RetentionPolicy
from redsm5_hpo.checkpoints.snapshot import SnapshotBuffers
from redsm5_hpo.checkpoints.store import CheckpointStore, load_training_state, load_weights
from redsm5_hpo.checkpoints.writer import BackgroundWriter


def test_a_job_runs_in_the_background_and_the_next_waits_for_it() -> None:
    writer = BackgroundWriter()
    release, order = threading.Event(), []
    writer.submit(lambda: (release.wait(5), order.append("first")))
    assert writer.busy  # submit returned while the job runs
    second = threading.Thread(target=lambda: writer.submit(lambda: order.append("second")))
    second.start()
    time.sleep(0.2)
    assert order == [] and second.is_alive()  # at most one write in flight: the second submit waits
    release.set()
    second.join(5)
    writer.wait()
    assert order == ["first", "second"] and not writer.busy


def test_a_failed_job_is_raised_once_in_the_submitting_thread() -> None:
    writer = BackgroundWriter()

    def fail() -> None:
        raise OSError(28, "No space left on device")

    writer.submit(fail)
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    writer.wait()  # raised once
    writer.submit(fail)
    deadline = time.time() + 5
    while writer.busy and time.time() < deadline:
        time.sleep(0.01)
    with pytest.raises(OSError):
        writer.raise_if_failed()
    writer.raise_if_failed()


def test_a_snapshot_is_isolated_from_the_live_state_and_reuses_its_buffers() -> None:
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    buffers = SnapshotBuffers()
    state = {"optimizer": optimizer.state_dict(), "rng": (3, torch.get_rng_state()), "history": [{"loss": 1.0}]}
    first = buffers.snapshot(model.state_dict(), state)
    expected = model.weight.detach().clone()
    moment = optimizer.state_dict()["state"][0]["exp_avg"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    optimizer.step()  # changes the moments in place
    state["history"].append({"loss": 0.5})
    assert torch.equal(first.weights["weight"], expected)
    assert torch.equal(first.training_state["optimizer"]["state"][0]["exp_avg"], moment)
    assert first.training_state["history"] == [{"loss": 1.0}] and isinstance(first.training_state["rng"], tuple)
    expected_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert first.nbytes > expected_bytes
    pointer = first.weights["weight"].data_ptr()
    second = buffers.snapshot(model.state_dict(), state)
    assert second.weights["weight"].data_ptr() == pointer  # the same buffer, no new allocation
    assert torch.equal(second.weights["weight"], model.weight.detach())


def test_save_writes_the_state_of_the_moment_it_was_called(tmp_path) -> None:
    model = torch.nn.Linear(8, 8)
    manager = CheckpointManager(CheckpointStore(tmp_path / "ckpt"), RetentionPolicy(2, 1), tmp_path)
    manager.start(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    manager.save(model, {"epoch": 1, "scale": torch.tensor([2.0])}, {"epoch": 1, "objective": 0.1, "architecture": "x"})
    with torch.no_grad():  # the loop trains on while the write runs
        model.weight.mul_(0.0)
    manager.wait()
    (saved,) = manager.store.list()
    fresh = torch.nn.Linear(8, 8)
    load_weights(saved, fresh, "x")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in before.items())
    assert torch.equal(load_training_state(saved)["scale"], torch.tensor([2.0]))
    assert manager.bytes_written == saved.size_bytes


def test_the_disk_guard_counts_a_write_in_flight_as_used() -> None:
    total = 100 << 20
    monitor = DiskMonitor(
        ".", Thresholds(0.10, 0.05), usage_fn=lambda _: DiskUsage(total, total - (15 << 20), 15 << 20)
    )
    assert monitor.check_now() == DiskLevel.OK
    monitor.in_flight_bytes = 7 << 20  # 8 MB left once the write lands: below 10%
    assert monitor.check_now() == DiskLevel.CRITICAL
    monitor.in_flight_bytes = 0
    assert monitor.check_now() == DiskLevel.OK


def test_a_snapshot_waits_for_every_gpu_its_tensors_came_from() -> None:
    from redsm5_hpo.checkpoints.snapshot import devices_to_wait_for

    sources = {torch.device("cuda:1"), torch.device("cpu"), torch.device("cuda:0")}
    assert devices_to_wait_for(sources) == [torch.device("cuda:0"), torch.device("cuda:1")]
    assert devices_to_wait_for({torch.device("cpu")}) == []
