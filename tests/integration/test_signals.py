"""SIGTERM and SIGINT (docker stop, Kubernetes, Ctrl-C) sent to a real running study: it stops at the next
batch with exit 143 / 130, the running trial is interrupted and resumable, and `resume` finishes the study
with the uninterrupted study's report; a second signal exits at once and the study still resumes."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time

import optuna
import pytest

from tests.conftest import CONFIG_DIR
from tests.helpers.study_cli import STUDY_OVERRIDES, cli, metric_counts, outcome, study_trials

OVERRIDES = STUDY_OVERRIDES


def start(root, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REDSM5_FAULT", None)
    command = [sys.executable, "-m", "redsm5_hpo", *args, f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]
    return subprocess.Popen(
        [*command, "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(process: subprocess.Popen, text: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    for line in process.stdout:
        if text in line:
            return
        assert time.monotonic() < deadline, f"no {text!r} within {timeout_s} s"
    pytest.fail(f"the study ended before {text!r} (exit {process.wait()})")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_at_the_next_batch_and_resume_finishes_the_same_study(
    uninterrupted, tmp_path, signum, code
) -> None:
    root = tmp_path / "experiments"
    process = start(root, "tune", *OVERRIDES)
    wait_for(process, "saved checkpoint")  # the first trial's epoch 1 is on disk; epoch 2 is training
    process.send_signal(signum)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == code, rest[-3000:]
    assert "resume --study" in rest and f"stopped by {signal.Signals(signum).name}" in rest
    first = study_trials(root)[0]
    assert first.state == optuna.trial.TrialState.FAIL
    assert first.user_attrs["lifecycle"] == "interrupted" and first.user_attrs["resumable"] is True
    assert not list(root.glob("study_*/study_report.json"))  # no test evaluation after a stop
    status = cli(root, "status").stdout
    assert "0 failed), 1 interrupted (resumable), 0 running, 1 queued" in status, status  # not a failure

    # the hint, pasted as printed into a shell in another directory
    (hint,) = set(re.findall(r"`(redsm5-hpo resume [^`]+)`", rest))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("REDSM5_FAULT", "REDSM5_EXPERIMENTS_DIR")}
    command = [sys.executable, "-m", "redsm5_hpo", *shlex.split(hint)[1:], "--no-progress"]
    resumed = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert not list(elsewhere.iterdir())  # it found the study where it is, and wrote nothing here
    report, weights = outcome(root)
    assert report["test_metrics"] == uninterrupted[0]["test_metrics"] and weights == uninterrupted[1]
    assert report["trials"] == {"requested": 2, "completed": 2, "pruned": 0, "failed": 0}
    for name, steps in metric_counts(root).items():
        assert set(steps.values()) == {1}, f"{name} logged twice: {steps}"


def test_a_second_signal_exits_at_once_and_the_study_still_resumes(uninterrupted, tmp_path) -> None:
    root = tmp_path / "experiments"
    process = start(root, "tune", *OVERRIDES)
    wait_for(process, "saved checkpoint")
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 143
    resumed = cli(root, "resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    report, weights = outcome(root)
    assert report["test_metrics"] == uninterrupted[0]["test_metrics"] and weights == uninterrupted[1]
