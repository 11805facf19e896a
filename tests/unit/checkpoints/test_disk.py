import logging
import time

import pytest
import torch

from redsm5_hpo.checkpoints.disk import (
    MB,
    DiskLevel,
    DiskUsage,
    Thresholds,
    assess,
    disk_full_message,
    estimate_checkpoint_bytes,
    human_bytes,
    largest_artifacts,
    minimum_bytes_to_run,
)
from redsm5_hpo.checkpoints.monitor import DiskMonitor


@pytest.mark.parametrize(
    ("free", "level"),
    [
        (500, DiskLevel.OK),
        (100, DiskLevel.OK),
        (99, DiskLevel.CRITICAL),
        (50, DiskLevel.CRITICAL),
        (49, DiskLevel.ERROR),
        (0, DiskLevel.ERROR),
    ],
)
def test_assess_thresholds(free, level) -> None:
    assert assess(DiskUsage(1000, 1000 - free, free), Thresholds(0.10, 0.05)) == level


def test_checkpoint_estimate_is_model_plus_two_adam_moments_plus_1mb() -> None:
    model = torch.nn.Linear(100, 10)  # 1010 float32 parameters
    full, weights = estimate_checkpoint_bytes(model)
    assert weights == 1010 * 4 + MB
    assert full == 3 * 1010 * 4 + MB
    assert minimum_bytes_to_run(full, weights) == 2 * full + weights
    assert minimum_bytes_to_run(full, weights, running=3) == 3 * 2 * full + weights  # one per worker


def test_disk_full_message_has_usage_need_artifacts_and_commands(tmp_path) -> None:
    big = tmp_path / "trial_a" / "checkpoints" / "epoch_0001"
    big.mkdir(parents=True)
    (big / "model.safetensors").write_bytes(b"x" * 5000)
    (tmp_path / "mlflow.db").write_bytes(b"x" * 100)
    assert largest_artifacts(tmp_path)[0] == (big, 5000)
    message = disk_full_message(tmp_path, DiskUsage(10 * MB, 9 * MB, MB), 3 * MB, "cannot keep a resumable checkpoint")
    for needle in ("1.0 MB free", "3.0 MB", str(big), "redsm5-hpo cleanup", "--execute", "retention_policy=aggressive"):
        assert needle in message
    assert human_bytes(1536) == "1.5 KB"


def test_monitor_reports_levels_and_runs_in_the_background(tmp_path, caplog) -> None:
    free = {"bytes": 500}
    monitor = DiskMonitor(
        tmp_path,
        Thresholds(),
        interval_s=0.02,
        info_interval_s=3600,
        usage_fn=lambda _: DiskUsage(1000, 1000 - free["bytes"], free["bytes"]),
    )
    with caplog.at_level(logging.INFO, logger="redsm5_hpo"), monitor:
        assert not monitor.critical
        free["bytes"] = 80
        deadline = time.time() + 5
        while not monitor.critical and time.time() < deadline:
            time.sleep(0.01)
        assert monitor.critical
        free["bytes"] = 20
        while monitor.level != DiskLevel.ERROR and time.time() < deadline:
            time.sleep(0.01)
    assert monitor.level == DiskLevel.ERROR and monitor.checks >= 3
    levels = {r.levelname for r in caplog.records if r.name == "redsm5_hpo.checkpoints.monitor"}
    assert levels == {"INFO", "WARNING", "ERROR"}
    assert sum("disk space under" in r.getMessage() for r in caplog.records) == 1  # INFO at most every info_interval_s
