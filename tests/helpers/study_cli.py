"""Run the CLI in a real subprocess (so a fault point can SIGKILL it) and read what a study left behind."""

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from redsm5_hpo.hpo.storage import open_storage
from tests.conftest import CONFIG_DIR

STUDY_OVERRIDES = [
    "model=tiny",
    "train.epochs=3",
    "train.batch_size=16",
    "hpo.n_trials=2",
    "hpo.baseline_trial=false",
    "train.optimization_metric=val_criteria_macro_pr_auc",
]
"""The two-trial tiny study the crash, signal and precision tests stop and resume."""


def cli(root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REDSM5_FAULT", None)
    if fault:
        env["REDSM5_FAULT"] = fault
    quiet = ["--no-progress"] if args[0] in ("tune", "resume") else []
    command = [sys.executable, "-m", "redsm5_hpo", *args, f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]
    command += quiet
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def kill_and_resume(root: Path, overrides: list[str], fault: str) -> subprocess.CompletedProcess:
    """``tune`` SIGKILLed at ``fault`` (``REDSM5_FAULT``), then ``resume`` to the end; the resume's result,
    after both were checked: the kill happened and the resume succeeded."""
    killed = cli(root, "tune", *overrides, fault=fault)
    assert killed.returncode == -9, f"not killed at {fault}: {killed.stderr[-2000:]}"
    resumed = cli(root, "resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return resumed


def outcome(root: Path) -> tuple[dict, str]:
    (report_path,) = root.glob("study_*/study_report.json")
    report = json.loads(report_path.read_text())
    (weights,) = [Path(p) / "model.safetensors" for p in report["checkpoint_references"]]
    return report, hashlib.sha256(weights.read_bytes()).hexdigest()


def best_weights(root: Path) -> dict:
    """The tensors of the study report's best checkpoint."""
    from safetensors.torch import load_file

    report = json.loads(next(root.glob("study_*/study_report.json")).read_text())
    (path,) = report["checkpoint_references"]
    return load_file(Path(path) / "model.safetensors")


def metric_counts(root: Path) -> dict[str, Counter]:
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    counts = {}
    for run in runs:
        for key in run.data.metrics:
            counts[f"{run.info.run_name}/{key}"] = Counter(
                m.step for m in client.get_metric_history(run.info.run_id, key)
            )
    return counts


def study_trials(root: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of the one study under ``root``, whichever storage it uses (SQLite, journal, database)."""
    (study_file,) = root.glob("study_*/study.json")
    saved = json.loads(study_file.read_text())
    return optuna.load_study(study_name=saved["study_name"], storage=open_storage(saved["storage"])).trials
