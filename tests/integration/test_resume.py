"""Kill a real study process at named points (SIGKILL via REDSM5_FAULT), resume it, and compare with an
uninterrupted run: same report, same best weights, every (run, metric, step) exactly once."""

import json
import re
import sqlite3

import pytest
from mlflow.tracking import MlflowClient

from redsm5_hpo.cli.main import EXIT_ALREADY_RUNNING
from redsm5_hpo.commands.answer import short
from redsm5_hpo.commands.verify import STUDY_RUN_METRICS as STUDY_SERIES
from redsm5_hpo.device_errors import EXIT_DEVICE_FAILED
from redsm5_hpo.hpo.lock import study_lock
from redsm5_hpo.pipeline.scoring import study_run_metrics
from tests.helpers.study_cli import STUDY_OVERRIDES, cli, kill_and_resume, metric_counts, outcome

OVERRIDES = STUDY_OVERRIDES
# 254 train posts in 300 windows, batches of 16 windows: 19, 20, 19, 20 batches in epochs 1-4 (every trial
# has the same seed); 53 validation posts in 63 windows = 4 batches a validation
KILL_POINTS = {
    "mid_epoch:5": "epoch 1, before the first checkpoint",
    "mid_epoch:20": "epoch 2",
    "mid_validation:6": "validation of epoch 2",
    "checkpoint_write:2": "writing the epoch 2 checkpoint",
    "checkpoint_commit:2": "background write of the epoch 2 checkpoint about to commit, epoch 3 training",
    "tracking_write:2": "epoch 2 metrics logged, its checkpoint not yet written",
    "mid_epoch:100": "second trial, epoch 3",
    "setup_metrics_logged:2": "second trial's set-up metrics logged, before its first epoch",
    "test_metrics_logged:1": "the test metrics logged, the report not yet written",
}


@pytest.mark.parametrize("fault", list(KILL_POINTS), ids=list(KILL_POINTS.values()))
def test_killed_and_resumed_study_matches_the_uninterrupted_one(uninterrupted, tmp_path, fault) -> None:
    root = tmp_path / "experiments"
    kill_and_resume(root, OVERRIDES, fault)
    report, weights_sha = outcome(root)
    expected_report, expected_sha = uninterrupted
    assert report["test_metrics"] == expected_report["test_metrics"]
    assert report["best_validation_value"] == expected_report["best_validation_value"]
    assert report["trials"] == {"requested": 2, "completed": 2, "pruned": 0, "failed": 0}
    assert weights_sha == expected_sha
    counts = metric_counts(root)
    for name, steps in counts.items():
        assert set(steps.values()) == {1}, f"{name} logged twice: {steps}"
    # the study's series are stepped 1..n_trials, whatever numbers Optuna gave the continuations
    (best_so_far,) = [steps for name, steps in counts.items() if re.fullmatch(r"study_\w+/best_so_far", name)]
    assert sorted(best_so_far) == [1, 2]
    assert [h["trial"] for h in report["summary"]["best_value_history"]] == [1, 2]
    test_metrics = {name.split("/")[1] for name in counts if name.startswith("study_")} - {*STUDY_SERIES}
    assert test_metrics == set(study_run_metrics(report))  # each test metric once, at step 0
    epochs = {name: sorted(steps) for name, steps in metric_counts(root).items() if name.endswith("/val_loss")}
    finished = [steps for steps in epochs.values() if steps == [1, 2, 3]]
    assert len(finished) == 2  # both trials hold every epoch; a run killed before its first checkpoint is extra


def test_a_gpu_failure_ends_the_process_and_resume_continues_the_trial(uninterrupted, tmp_path) -> None:
    """A sticky CUDA error (a device-side assert from a fault point in epoch 2) leaves the process's CUDA
    context unusable: the study stops with exit 5, its trial resumable, and a fresh process finishes it."""
    root = tmp_path / "experiments"
    failed = cli(root, "tune", *OVERRIDES, fault="mid_epoch:25:cuda_assert")
    assert failed.returncode == EXIT_DEVICE_FAILED, failed.stderr[-2000:]
    assert "the GPU failed (CUDA error: device-side assert triggered)" in failed.stderr
    assert "Traceback" not in failed.stderr and "resume --study" in failed.stdout
    resumed = cli(root, "resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    report, weights_sha = outcome(root)
    assert report["test_metrics"] == uninterrupted[0]["test_metrics"] and weights_sha == uninterrupted[1]
    assert report["trials"] == {"requested": 2, "completed": 2, "pruned": 0, "failed": 0}
    for name, steps in metric_counts(root).items():
        assert set(steps.values()) == {1}, f"{name} logged twice: {steps}"


def test_out_of_gpu_memory_fails_only_its_trial(tmp_path) -> None:
    root = tmp_path / "experiments"
    result = cli(root, "tune", *OVERRIDES, "train.epochs=1", fault="mid_epoch:3:oom")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(next(root.glob("study_*/study_report.json")).read_text())
    assert report["trials"] == {"requested": 2, "completed": 1, "pruned": 0, "failed": 1}
    (failure,) = report["summary"]["failed"]
    assert failure["trial"] == 1 and failure["reason"].startswith("OutOfMemoryError: CUDA out of memory")


def tracker_rows(root) -> dict[str, list[tuple]]:
    """Every row MLflow's store holds about runs: metrics, params, tags and the runs themselves."""
    with sqlite3.connect(root / "mlflow.db") as db:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in ("metrics", "params", "tags", "runs")}


def test_a_finished_study_resumed_does_nothing_and_says_so(uninterrupted_root) -> None:
    root = uninterrupted_root
    (report_path,) = root.glob("study_*/study_report.json")
    study_id = report_path.parent.name.removeprefix("study_")
    report, rows = report_path.read_bytes(), tracker_rows(root)
    for args in (["resume"], ["resume"], ["resume", "seed=13", "train.epochs=3"]):  # the study's own values
        again = cli(root, *args)
        assert again.returncode == 0, again.stderr[-2000:]
        assert f"study {study_id} had finished: nothing ran and nothing was logged again" in again.stdout
        assert (
            f"study report: {report_path}" in again.stdout and "test (calibrated thresholds): macro-F1" in again.stdout
        )
        assert report_path.read_bytes() == report and tracker_rows(root) == rows
    saved = json.loads(report)
    best = next(h for h in saved["summary"]["best_value_history"] if h["trial_id"] == saved["best_trial_id"])
    assert saved["best_params"] == best["params"] and saved["best_params"]  # the searched parameters, on top
    table = again.stdout.splitlines()
    header = next(line for line in table if line.split()[:2] == ["trial", "state"])
    assert set(saved["best_params"]) <= set(header.split())
    trial_rows = table[table.index(header) + 1 : table.index(header) + 3]
    assert [row.lstrip("* ").split()[0] for row in trial_rows] == ["1", "2"]  # numbered as the log's trial k/N
    params = "best parameters: " + " ".join(f"{k}={short(v)}" for k, v in sorted(best["params"].items()))
    assert params in again.stdout  # 4 significant digits
    assert f"redsm5-hpo export --study study_{study_id}" in again.stdout
    hint = re.search(r"`(redsm5-hpo evaluate [^`]+)`", again.stdout)
    assert hint and f"experiments_dir={root}" in hint.group(1)  # complete: it works pasted anywhere
    changed = cli(root, "resume", "seed=14")
    assert changed.returncode == 2 and "resume: seed would change what the study's trials compute" in changed.stderr
    assert report_path.read_bytes() == report and tracker_rows(root) == rows


def test_a_resume_killed_during_set_up_can_be_resumed_again(uninterrupted, tmp_path) -> None:
    root = tmp_path / "experiments"
    assert cli(root, "tune", *OVERRIDES, fault="mid_epoch:20").returncode == -9
    assert cli(root, "resume", fault="resume_setup:1").returncode == -9
    assert cli(root, "resume").returncode == 0
    report, weights_sha = outcome(root)
    assert report["test_metrics"] == uninterrupted[0]["test_metrics"] and weights_sha == uninterrupted[1]


def test_second_process_on_a_running_study_exits_cleanly(tmp_path) -> None:
    root = tmp_path / "experiments"
    assert cli(root, "tune", *OVERRIDES, fault="mid_epoch:20").returncode == -9
    (study_dir,) = root.glob("study_*")
    before = sorted(p.name for p in root.rglob("*"))
    with study_lock(study_dir):  # this test process plays the running study
        second = cli(root, "resume")
    assert second.returncode == EXIT_ALREADY_RUNNING
    assert "already running" in second.stderr and "nothing was done" in second.stderr
    assert sorted(p.name for p in root.rglob("*")) == before


def test_rollback_continues_from_an_earlier_checkpoint_in_a_new_run(tmp_path) -> None:
    root = tmp_path / "experiments"
    overrides = [*OVERRIDES, "hpo.n_trials=1", "train.epochs=4", "retention_policy.keep_last_n=4"]
    assert cli(root, "tune", *overrides, fault="mid_epoch:63").returncode == -9  # killed in epoch 4
    (trial_dir,) = root.glob("trial_*")
    trial_id = trial_dir.name.removeprefix("trial_")
    too_far = cli(root, "rollback", "--trial", trial_id, "--epoch", "9")
    assert too_far.returncode == 2 and "keep_last_n" in too_far.stderr
    rolled = cli(root, "rollback", "--trial", trial_id, "--epoch", "2", "--set", "train.lr_head=5e-4")
    assert rolled.returncode == 0, rolled.stderr[-2000:]
    assert sorted(p.name for p in (trial_dir / "checkpoints").iterdir()) == ["epoch_0001", "epoch_0002"]
    hint = re.search(r"`(redsm5-hpo resume [^`]+)`", rolled.stdout)
    assert hint and f"experiments_dir={root}" in hint.group(1)  # complete: it works pasted anywhere
    assert cli(root, "resume").returncode == 0

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
        if r.info.run_name == f"trial_{trial_id}"
    ]
    (new,) = [r for r in runs if "rolled_back_from" in r.data.tags]
    (old,) = [r for r in runs if r is not new]
    assert new.data.tags["rolled_back_from"] == old.info.run_id and old.info.status == "KILLED"

    def history(run, key):
        return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}

    assert sorted(history(new, "val_loss")) == [3, 4]  # the new run holds only what came after the rollback
    assert sorted(history(old, "val_loss")) == [1, 2, 3]
    assert history(new, "lr_head")[3] < history(old, "lr_head")[3]  # the lower learning rate took effect
    report = json.loads((trial_dir / "evaluation_report.json").read_text())
    assert [h["val_loss"] for h in report["history"][:2]] == [history(old, "val_loss")[s] for s in (1, 2)]
    assert [h["val_loss"] for h in report["history"][2:]] == [history(new, "val_loss")[s] for s in (3, 4)]
    finished = cli(root, "rollback", "--trial", trial_id, "--epoch", "1")
    assert finished.returncode == 2 and "a completed trial is final" in finished.stderr
