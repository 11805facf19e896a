"""Disk pressure and disk-full on a real tmpfs (needs root to mount; CI runs as root)."""

import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from redsm5_hpo.checkpoints.store import CheckpointStore
from redsm5_hpo.cli.main import EXIT_DISK_FULL, EXIT_USER_ERROR, main
from redsm5_hpo.evaluation.metrics import metric_keys
from tests.conftest import CONFIG_DIR, tiny_overrides

MB = 1 << 20
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave_free: int, name: str = "ballast") -> None:
    """Write a file that leaves ``leave_free`` bytes free on the filesystem."""
    free = shutil.disk_usage(mount).free
    with open(mount / name, "ab") as f:
        f.write(b"\0" * max(0, free - leave_free))


def run(tmp_path: Path, root: Path, *extra: str) -> int:
    overrides = tiny_overrides(
        root,
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"hpo.storage=sqlite:///{tmp_path / 'optuna.db'}",
        "disk_guard.reserve_mb=0.1",
        "train.optimization_metric=val_criteria_macro_pr_auc",
        *extra,
    )
    return main(["tune", *overrides, "--config-dir", str(CONFIG_DIR), "--no-progress"])


def json_records(root: Path) -> list[dict]:
    return [json.loads(line) for path in root.glob("*/logs/events.jsonl") for line in path.read_text().splitlines()]


def test_below_10_percent_free_prunes_aggressively_and_the_study_completes(tmpfs, tmp_path, capsys) -> None:
    root = tmpfs / "experiments"
    fill(tmpfs, leave_free=int(5.5 * MB))  # 8.6% free: critical, yet enough for one resume point and the best
    assert run(tmp_path, root, "hpo.n_trials=2", "train.epochs=3") == 0
    out = capsys.readouterr().out
    assert "disk space below 10%" in out and "disk pressure before saving" in out
    assert "later trials keep one resume point and one best checkpoint" in out
    kept = [c for d in root.glob("trial_*") for c in CheckpointStore(d / "checkpoints").list()] if root.exists() else []
    assert len(kept) == 1  # only the study's single best checkpoint survives
    (report,) = root.glob("study_*/study_report.json")
    assert json.loads(report.read_text())["checkpoint_references"] == [str(kept[0].path)]


def test_run_that_cannot_fit_stops_before_training_with_the_full_report(tmpfs, tmp_path, capsys) -> None:
    root = tmpfs / "experiments"
    fill(tmpfs, leave_free=2 * MB)
    assert run(tmp_path, root, "hpo.n_trials=2") == EXIT_DISK_FULL
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert out.count("not enough disk space under") == 1  # printed once, not logged and printed again
    for needle in (
        "not enough disk space",
        "cannot fit even after aggressive pruning",
        "largest artifacts",
        "redsm5-hpo cleanup",
    ):
        assert needle in out
    critical = [r for r in json_records(root) if r["severity"] == "CRITICAL"]
    assert critical and "largest artifacts" in critical[0]["message"]
    assert not any(p.name.startswith("epoch_") for p in root.rglob("*"))  # no training happened, nothing saved
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    assert {r.info.status for r in runs} == {"FAILED"}
    assert len([r for r in runs if r.info.run_name.startswith("trial_")]) == 1  # the study stopped at once


def test_disk_filling_mid_run_stops_with_the_report_and_every_metric_logged(tmpfs, tmp_path, capsys) -> None:
    root = tmpfs / "experiments"
    fill(tmpfs, leave_free=12 * MB)

    def fill_after_first_checkpoint() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not list(root.glob("trial_*/checkpoints/epoch_0001/manifest.json")):
            time.sleep(0.002)
        fill(tmpfs, leave_free=300_000, name="ballast2")

    filler = threading.Thread(target=fill_after_first_checkpoint)
    filler.start()
    code = run(tmp_path, root, "hpo.n_trials=1", "train.epochs=40")
    filler.join()
    assert code == EXIT_DISK_FULL
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert out.count("not enough disk space under") == 1
    assert "cannot keep a resumable checkpoint plus the best model" in out and "largest artifacts" in out
    assert any(r["severity"] == "CRITICAL" and "largest artifacts" in r["message"] for r in json_records(root))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (trial_run,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
        if r.info.run_name.startswith("trial_")
    ]
    steps = None
    for key in set(metric_keys("val")) | {"train_loss"}:
        counts = Counter(m.step for m in client.get_metric_history(trial_run.info.run_id, key))
        assert set(counts.values()) == {1}, key  # nothing logged twice
        steps = steps or sorted(counts)
        assert sorted(counts) == steps, key  # every metric present for every epoch that ran
    assert steps[0] == 1 and steps == list(range(1, len(steps) + 1)) and 2 <= len(steps) < 40
    (trial_dir,) = root.glob("trial_*")
    assert not list((trial_dir / "checkpoints").glob(".tmp-*"))
    assert CheckpointStore(trial_dir / "checkpoints").list()  # the last good checkpoint is intact

    # the user frees some space and follows the report's advice on the stopped study
    (tmpfs / "ballast2").unlink()
    options = [f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR), "--no-progress"]
    assert main(["resume", "model.dropout=0.5", *options]) == EXIT_USER_ERROR
    assert "resume: model.dropout would change what the study's trials compute" in capsys.readouterr().err
    assert main(["resume", "retention_policy=aggressive", "train.checkpoint_interval_epochs=2", *options]) == 0
    (study_file,) = root.glob("study_*/study.json")
    saved = json.loads(study_file.read_text())["config"]
    assert saved["retention_policy"]["keep_last_n"] == 0 and saved["train"]["checkpoint_interval_epochs"] == 2
    (report,) = root.glob("study_*/study_report.json")
    assert json.loads(report.read_text())["trials"]["completed"] == 1


def test_disk_full_during_the_write_removes_the_partial_checkpoint(tmpfs) -> None:
    import torch

    from redsm5_hpo.checkpoints.disk import DiskSpaceError
    from redsm5_hpo.checkpoints.manager import CheckpointManager
    from redsm5_hpo.checkpoints.retention import RetentionPolicy

    manager = CheckpointManager(CheckpointStore(tmpfs / "ckpt"), RetentionPolicy(), tmpfs)
    model = torch.nn.Linear(512, 512)  # ~1 MB of weights
    manager.save(model, {"epoch": 1}, {"epoch": 1, "objective": 0.1})
    manager.wait()
    manager.full_bytes = 1  # pretend the next save is tiny, so the write itself hits the full disk
    fill(tmpfs, leave_free=200_000)
    manager.save(model, {"epoch": 2}, {"epoch": 2, "objective": 0.2})  # the write runs in the background
    with pytest.raises(DiskSpaceError, match="the disk filled up while saving"):
        manager.wait()  # the training thread learns of it at its next contact with the writer
    assert [p.name for p in (tmpfs / "ckpt").iterdir()] == ["epoch_0001"]
    assert [c.epoch for c in manager.store.list()] == [1]
