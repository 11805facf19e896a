"""Worker processes on several machines share one study through a real PostgreSQL server (started by
.ci/run): exactly n_trials trials, none twice, each with its MLflow run, one study report; a worker whose
machine dies is found by Optuna's storage heartbeat and its trial continues on another worker."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers.study_cli import cli, metric_counts
from tests.integration.test_tracking_outage import TINY, Cli

ADMIN_URL = os.environ.get("REDSM5_TEST_POSTGRES")


@pytest.fixture
def postgres_url():
    if not ADMIN_URL:
        pytest.skip("REDSM5_TEST_POSTGRES is not set (.ci/run starts PostgreSQL and sets it)")
    import psycopg

    name = f"redsm5_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_study_on_a_shared_database_without_a_name_is_refused_before_any_work(tmp_path, postgres_url) -> None:
    """Two machines running the same `tune` without hpo.study_name would each start a study of their own."""
    root = tmp_path / "experiments"
    common = [
        *TINY,
        "train.epochs=1",
        "hpo.n_trials=2",
        "hpo.baseline_trial=false",
        f"hpo.storage={postgres_url}",
        "--no-progress",
    ]
    workers = [Cli(root, "tune", *common), Cli(root, "tune", *common)]
    for worker in workers:
        assert worker.finish() == 2, worker.output[-3000:]
        assert "hpo.study_name=<name>" in worker.output and "Traceback" not in worker.output
    assert optuna.get_all_study_names(storage=postgres_url) == []
    assert not list(root.glob("study_*")) and not list(root.glob("trial_*"))


def test_two_workers_share_one_study(tmp_path, postgres_url) -> None:
    root = tmp_path / "experiments"
    study_name = f"study_{uuid.uuid4().hex}"
    common = [
        *TINY,
        "train.epochs=3",
        "hpo.n_trials=6",
        "hpo.baseline_trial=false",
        f"hpo.storage={postgres_url}",
        f"hpo.study_name={study_name}",
    ]
    first = Cli(root, "tune", *common, "--no-progress")
    first.wait_for("trial 1/6")  # the study, its slots and study.json exist: a second worker can join
    second = Cli(root, "tune", *common, "--no-progress")
    assert first.finish() == 0, first.output[-3000:]
    assert second.finish() == 0, second.output[-3000:]

    outputs = [first.output, second.output]
    assert all("trial " in out and "epoch 1:" in out for out in outputs), "both workers must have trained"
    assert sum("study report:" in out for out in outputs) == 1
    assert sum("another worker writes" in out for out in outputs) == 1
    assert [p.name for p in (root / study_name).glob("study_report.json")] == ["study_report.json"]

    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    trials = study.trials
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs["slot"] for t in trials) == list(range(6))
    trial_ids = [t.user_attrs["trial_id"] for t in trials]
    assert len(set(trial_ids)) == 6, "a trial ran twice"
    assert len(list(root.glob("trial_*"))) == 6

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])}
    for t in trials:
        run = runs[f"trial_{t.user_attrs['trial_id']}"]
        assert run.info.status == "FINISHED" and run.data.tags["lifecycle"] == "completed"
        steps = Counter(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))
        assert steps == {1: 1, 2: 1, 3: 1}

    report = json.loads((root / study_name / "study_report.json").read_text())
    assert report["trials"]["completed"] == 6
    best = max(trials, key=lambda t: t.value)
    assert report["best_trial_id"] == best.user_attrs["trial_id"]
    kept = [p for p in root.glob("trial_*/checkpoints/epoch_*")]
    assert kept and all(f"trial_{report['best_trial_id']}" in str(p) for p in kept)


def test_a_dead_workers_trial_is_failed_by_its_heartbeat_and_continued_elsewhere(tmp_path, postgres_url) -> None:
    root = tmp_path / "experiments"
    study_name = f"study_{uuid.uuid4().hex}"
    common = [
        *TINY,
        "train.epochs=3",
        "hpo.n_trials=1",
        "hpo.baseline_trial=false",
        f"hpo.storage={postgres_url}",
        f"hpo.study_name={study_name}",
    ]
    common += ["hpo.heartbeat_interval_s=1", "hpo.stale_after_s=3"]
    first = Cli(root, "tune", *common, "--no-progress")
    first.wait_for("saved checkpoint")  # epoch 1 is on disk: the machine dies
    os.kill(first.process.pid, signal.SIGKILL)
    first.finish()
    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING]  # nothing told the storage
    time.sleep(4)  # longer than hpo.stale_after_s since its last heartbeat

    second = Cli(root, "tune", *common, "--no-progress")  # another machine joins the study
    assert second.finish() == 0, second.output[-3000:]
    assert "trial 0 was interrupted; it resumes from its newest checkpoint" in second.output
    first_trial, continuation = optuna.load_study(study_name=study_name, storage=postgres_url).trials
    assert first_trial.state == optuna.trial.TrialState.FAIL
    assert continuation.state == optuna.trial.TrialState.COMPLETE and continuation.user_attrs["resume_of"] == 0
    assert continuation.user_attrs["trial_id"] == first_trial.user_attrs["trial_id"]  # same directory, same run
    assert continuation.user_attrs["mlflow_run_id"] == first_trial.user_attrs["mlflow_run_id"]
    report = json.loads((root / study_name / "study_report.json").read_text())
    assert report["trials"]["completed"] == 1


def test_a_shared_study_killed_before_its_report_is_finished_by_resume(tmp_path, postgres_url) -> None:
    """The process that claimed the report died after logging the test metrics: a resume on the same machine
    succeeds its claim, writes the one report, and MLflow holds each test metric once."""
    root = tmp_path / "experiments"
    study_name = f"study_{uuid.uuid4().hex}"
    common = [
        *TINY,
        "train.epochs=1",
        "hpo.n_trials=1",
        "hpo.baseline_trial=false",
        f"hpo.storage={postgres_url}",
        f"hpo.study_name={study_name}",
    ]
    assert cli(root, "tune", *common, fault="test_metrics_logged:1").returncode == -9
    assert (root / study_name / ".report_claim").is_file() and not (root / study_name / "study_report.json").exists()
    resumed = cli(root, "resume", "--study", study_name)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    report = json.loads((root / study_name / "study_report.json").read_text())
    assert report["trials"]["completed"] == 1
    counts = metric_counts(root)
    tests = {name: steps for name, steps in counts.items() if name.startswith(f"{study_name}/test_")}
    assert tests and all(steps == {0: 1} for steps in tests.values())
    again = cli(root, "resume", "--study", study_name)
    assert again.returncode == 0 and "had finished" in again.stdout
