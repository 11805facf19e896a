"""hpo.n_workers=2 on one machine: real worker processes on Optuna's journal storage. The two-trial study
(``STUDY_OVERRIDES``) run by two workers at once gives the report of the one-worker study; stopped with
SIGTERM, resumed with two workers, killed with SIGKILL (every process), and resumed with one worker, it
still does, with every metric logged once.

Each worker gets its share of the cores (one torch thread on two cores; ``make test`` gives every test
process one thread anyway), and the order of a sum over threads changes the last bits of the weights:
the test metrics are equal, the weights equal to float32 rounding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from tests.conftest import CONFIG_DIR
from tests.helpers.study_cli import STUDY_OVERRIDES, best_weights, cli, metric_counts, outcome, study_trials

TWO = [*STUDY_OVERRIDES, "hpo.n_workers=2"]


def start(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REDSM5_FAULT", None)
    command = [sys.executable, "-m", "redsm5_hpo", *args, f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]
    return subprocess.Popen(
        [*command, "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def saved_checkpoints(root: Path) -> list[int]:
    """How many checkpoints each worker's log (worker-0, worker-1, ...) reports saved."""
    logs = sorted(root.glob("study_*/logs/worker-*.log"))
    return [p.read_text(errors="replace").count("saved checkpoint") for p in logs]


def wait_for_checkpoints(root: Path, more: int, workers: int = 2, timeout_s: float = 240) -> None:
    """Until every one of the ``workers`` has saved ``more`` checkpoints beyond what its log held when this was
    called (a busy machine may let one worker run ahead: a total would not say that both trials saved)."""
    before = saved_checkpoints(root) or [0] * workers
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        saved = saved_checkpoints(root)
        if len(saved) == workers and all(n >= b + more for n, b in zip(saved, before, strict=True)):
            return
        time.sleep(0.2)
    pytest.fail(f"not every worker saved {more} more checkpoint(s) within {timeout_s} s")


def wait_for_logs(root: Path, text: str, workers: int = 2, timeout_s: float = 240) -> None:
    """Until the log of every one of the ``workers`` holds ``text``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = [p.read_text(errors="replace") for p in root.glob("study_*/logs/worker-*.log")]
        if len(logs) == workers and all(text in log for log in logs):
            return
        time.sleep(0.1)
    pytest.fail(f"not every worker logged {text!r} within {timeout_s} s")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def assert_same_study(root: Path, uninterrupted, uninterrupted_root: Path) -> dict:
    report, _ = outcome(root)
    assert report["test_metrics"] == uninterrupted[0]["test_metrics"]
    assert report["best_validation_value"] == uninterrupted[0]["best_validation_value"]
    ours, theirs = best_weights(root), best_weights(uninterrupted_root)
    assert ours.keys() == theirs.keys()
    for name, tensor in ours.items():
        torch.testing.assert_close(tensor, theirs[name], rtol=1e-4, atol=1e-5, msg=name)
    return report


def test_two_workers_run_the_one_worker_study(uninterrupted, uninterrupted_root, tmp_path) -> None:
    root = tmp_path / "experiments"
    result = cli(root, "tune", *TWO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (study_file,) = root.glob("study_*/study.json")
    assert json.loads(study_file.read_text())["storage"].startswith("journal://")
    assert "study: 2/2 trials done" in result.stdout
    trials = study_trials(root)
    assert {t.user_attrs["worker"]["index"] for t in trials} == {0, 1}, "each worker ran a trial"
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    report = assert_same_study(root, uninterrupted, uninterrupted_root)
    # both trials finished at about the same time, in two processes: the study's best kept, the other not.
    # Which way depends on the timing: finished first, its checkpoints were released when the best one
    # finished (a worker logged it and its report says so); finished second, it kept none, since the best
    # had already finished
    kept = {p.parent.parent.name for p in root.glob("trial_*/checkpoints/epoch_*")}
    assert kept == {f"trial_{report['best_trial_id']}"}
    (other,) = [t for t in trials if t.user_attrs["trial_id"] != report["best_trial_id"]]
    other_report = json.loads((Path(other.user_attrs["trial_dir"]) / "evaluation_report.json").read_text())
    logs = "".join(p.read_text() for p in root.glob("study_*/logs/worker-*.log"))
    released = f"released the checkpoints of finished trial {other.number} " in logs
    assert other_report["checkpoint_references"] == []
    assert other_report.get("released", False) is released


def test_sigterm_then_sigkill_of_every_worker_resume_to_the_same_study(
    uninterrupted, uninterrupted_root, tmp_path
) -> None:
    root = tmp_path / "experiments"
    process = start(root, "tune", *TWO)
    # as soon as both trials train: one worker starts a second or so before the other, and tiny trials are
    # short, so waiting for a checkpoint of each could let the first trial finish before the signal
    wait_for_logs(root, "training from epoch 1")
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 143, rest[-3000:]
    assert "resume --study" in rest
    trials = study_trials(root)
    assert all(t.user_attrs["lifecycle"] == "interrupted" and t.user_attrs["resumable"] for t in trials)
    assert not list(root.glob("study_*/study_report.json"))

    resumed = start(root, "resume")
    wait_for_checkpoints(root, 1)  # each continuation saved one more (epoch 2): now every process dies at once
    for pid in [*children(resumed.pid), resumed.pid]:
        os.kill(pid, signal.SIGKILL)
    resumed.communicate(timeout=60)

    final = cli(root, "resume", "hpo.n_workers=1")  # another number of workers than the study started with
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "resumes from its newest checkpoint" in final.stdout
    report = assert_same_study(root, uninterrupted, uninterrupted_root)
    assert report["trials"] == {"requested": 2, "completed": 2, "pruned": 0, "failed": 0}
    for name, steps in metric_counts(root).items():
        assert set(steps.values()) == {1}, f"{name} logged twice: {steps}"


def test_a_worker_whose_gpu_failed_is_replaced_and_its_trial_continues(
    uninterrupted, uninterrupted_root, tmp_path, monkeypatch
) -> None:
    """A sticky CUDA error (a device-side assert, raised by a fault point in the first worker to reach its
    25th batch) ends that worker; its trial continues from its checkpoint in a fresh worker process."""
    root = tmp_path / "experiments"
    monkeypatch.setenv("REDSM5_FAULT_ONCE", str(tmp_path / "fired"))
    result = cli(root, "tune", *TWO, fault="mid_epoch:25:cuda_assert")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "fired").exists() and "ended: its GPU failed" in result.stdout
    trials = study_trials(root)
    (failed,) = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed.user_attrs["lifecycle"] == "interrupted" and failed.user_attrs["resumable"]
    assert "device-side assert triggered" in failed.user_attrs["fail_reason"]
    (continuation,) = [t for t in trials if t.user_attrs.get("resume_of") == failed.number]
    assert continuation.state == optuna.trial.TrialState.COMPLETE
    assert continuation.user_attrs["worker"]["pid"] != failed.user_attrs["worker"]["pid"]  # a fresh process
    report = assert_same_study(root, uninterrupted, uninterrupted_root)
    assert report["trials"] == {"requested": 2, "completed": 2, "pruned": 0, "failed": 0}
    for name, steps in metric_counts(root).items():
        assert set(steps.values()) == {1}, f"{name} logged twice: {steps}"
