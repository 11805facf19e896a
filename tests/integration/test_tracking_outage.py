"""A real MLflow server stopped in the middle of real studies: training goes on, the journal replays,
every (run, metric, step) arrives exactly once."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from redsm5_hpo.tracking.journal import pending_in
from tests.conftest import CONFIG_DIR
from tests.helpers.mlflow_server import MlflowServer

TINY = ["model=tiny", "train.batch_size=16", "train.optimization_metric=val_criteria_macro_pr_auc"]


class Cli:
    """A CLI process whose stdout lines can be waited for while it runs."""

    def __init__(self, root: Path, *args: str):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("REDSM5_FAULT", None)
        flags = [a for a in args if a.startswith("--")]
        positional = [a for a in args if not a.startswith("--")]
        command = [sys.executable, "-m", "redsm5_hpo", *positional, f"experiments_dir={root}"]
        command += ["--config-dir", str(CONFIG_DIR), *flags]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._new.put(line)

    def wait_for(self, text: str, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        if any(text in line for line in self.lines):
            return
        while time.monotonic() < deadline:
            try:
                if text in self._new.get(timeout=0.5):
                    return
            except queue.Empty:
                if self.process.poll() is not None and self._new.empty():
                    break
        raise AssertionError(f"{text!r} never appeared:\n{''.join(self.lines)[-4000:]}")

    def finish(self, timeout_s: float = 300.0) -> int:
        code = self.process.wait(timeout=timeout_s)
        time.sleep(0.2)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cli = Cli(root, *args)
    code = cli.finish()
    return subprocess.CompletedProcess(args, code, cli.output, "")


def metric_counts(uri: str) -> dict[tuple[str, str, int], int]:
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    counts: Counter[tuple[str, str, int]] = Counter()
    for r in runs:
        for key in r.data.metrics:
            for m in client.get_metric_history(r.info.run_id, key):
                counts[(r.info.run_name, key, m.step)] += 1
    return dict(counts)


@pytest.fixture
def server(tmp_path):
    s = MlflowServer(tmp_path / "mlflow")
    s.start()
    yield s
    s.stop()


def test_outage_mid_study_loses_nothing_and_never_stalls_training(tmp_path, server) -> None:
    root = tmp_path / "experiments"
    args = [
        "tune",
        *TINY,
        "train.epochs=3",
        "hpo.n_trials=3",
        "hpo.baseline_trial=false",
        f"tracking.uri={server.uri}",
        "--no-progress",
    ]
    study = Cli(root, *args)
    study.wait_for("epoch 1: ")
    server.stop()
    # trials keep starting and training while the tracker is down: nothing waits on it
    study.wait_for("trial 3/3:")
    study.wait_for("epoch 2: ")
    assert pending_in(root / "tracking_journal") > 0
    server.start()
    assert study.finish() == 0, study.output[-4000:]
    assert "unreachable" in study.output
    assert "reachable again" in study.output
    assert not list((root / "tracking_journal").glob("*.jsonl")), "the journal must be empty once confirmed"
    counts = metric_counts(server.uri)
    assert counts and set(counts.values()) == {1}
    trial_runs = {name for name, _, _ in counts if name.startswith("trial_")}
    assert len(trial_runs) == 3
    for name in trial_runs:
        assert {step for n, key, step in counts if n == name and key == "train_loss"} == {1, 2, 3}
    verified = run(root, "verify", f"tracking.uri={server.uri}")
    assert verified.returncode == 0, verified.stdout
    assert "exactly once" in verified.stdout


def test_outage_across_a_killed_process_replays_on_resume(tmp_path, server) -> None:
    root = tmp_path / "experiments"
    args = [
        "tune",
        *TINY,
        "train.epochs=3",
        "hpo.n_trials=2",
        "hpo.baseline_trial=false",
        f"tracking.uri={server.uri}",
        "--no-progress",
    ]
    study = Cli(root, *args)
    study.wait_for("epoch 1: ")
    server.stop()
    study.wait_for("trial 2/2:")  # the second trial's run is created while the server is down
    study.wait_for("saved checkpoint")
    study.process.send_signal(signal.SIGKILL)
    assert study.finish() == -9
    assert pending_in(root / "tracking_journal") > 0
    server.start()
    resumed = run(root, "resume", f"tracking.uri={server.uri}", "--no-progress")
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert "adopted" in resumed.stdout
    assert pending_in(root / "tracking_journal") == 0
    counts = metric_counts(server.uri)
    assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1]
    verified = run(root, "verify", f"tracking.uri={server.uri}")
    assert verified.returncode == 0, verified.stdout


def test_a_trial_resumed_during_an_outage_reaches_the_tracker_once(tmp_path, server) -> None:
    """A continuation cannot read what its run holds while the tracker is down, so it logs its set-up metrics
    (and the epoch it redoes) again; the tracker gets each (metric, step) once when it is back."""
    root = tmp_path / "experiments"
    args = [
        "tune",
        *TINY,
        "train.epochs=3",
        "hpo.n_trials=1",
        "hpo.baseline_trial=false",
        f"tracking.uri={server.uri}",
        "--no-progress",
    ]
    study = Cli(root, *args)
    study.wait_for("epoch 2: ")  # epoch 1's checkpoint is on disk, epoch 2's metrics are logged
    study.process.send_signal(signal.SIGKILL)
    assert study.finish() == -9
    synced = run(root, "sync", f"tracking.uri={server.uri}")  # the tracker holds all the killed run logged
    assert synced.returncode == 0 and pending_in(root / "tracking_journal") == 0, synced.stdout[-2000:]
    server.stop()
    down = ["resume", f"tracking.uri={server.uri}", "tracking.flush_timeout_s=1", "--no-progress"]
    resumed = run(root, *down)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert "cannot read run" in resumed.stdout  # it could not tell what its run held
    assert pending_in(root / "tracking_journal") > 0
    server.start()
    verified = run(root, "verify", f"tracking.uri={server.uri}")
    assert verified.returncode == 0, verified.stdout
    counts = metric_counts(server.uri)
    assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1]
    assert {step for (_, key, step) in counts if key == "train_evidence_truncation_loss"} == {0}


def test_corrupted_tracking_database_keeps_metrics_and_says_how_to_repair(tmp_path) -> None:
    root = tmp_path / "experiments"
    root.mkdir()
    (root / "mlflow.db").write_bytes(b"this is not a database\n" * 100)
    trained = run(root, "train", *TINY, "train.epochs=2", "tracking.flush_timeout_s=2", "--no-progress")
    assert trained.returncode == 0, trained.stdout[-4000:]
    assert "looks corrupted" in trained.stdout and "sqlite3 mlflow.db .recover" in trained.stdout
    waiting = pending_in(root / "tracking_journal")
    assert waiting > 0
    (root / "mlflow.db").rename(root / "mlflow.db.corrupt")  # the user's repair: start a fresh database
    synced = run(root, "sync")
    assert synced.returncode == 0, synced.stdout[-4000:]
    assert pending_in(root / "tracking_journal") == 0
    counts = metric_counts(f"sqlite:///{root / 'mlflow.db'}")
    assert {step for (_, key, step) in counts if key == "train_loss"} == {1, 2}
    assert set(counts.values()) == {1}
