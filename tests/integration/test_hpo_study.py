"""A full study with a conditional space and median pruning on the tiny encoder: pruning prunes,
conditional parameters respect their parents, thresholds are calibrated and used, the report and plots
are there and match a direct evaluation, and `evaluate` / `report` redo them from disk."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from redsm5_hpo.cli.main import main
from redsm5_hpo.evaluation.reports import validate_report
from redsm5_hpo.labels import SYMPTOMS
from tests.conftest import CONFIG_DIR
from tests.helpers.study_cli import study_trials

OVERRIDES = [
    "model=tiny",
    "hpo=conditional",
    "hpo.n_trials=6",
    "hpo.baseline_trial=false",
    "hpo.pruner_startup_trials=1",
    "train.epochs=3",
    "train.optimization_metric=val_criteria_macro_pr_auc",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("hpo") / "experiments"
    assert main(["tune", *OVERRIDES, f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR), "--no-progress"]) == 0
    (study_dir,) = root.glob("study_*")
    return root, study_dir, study_trials(root), json.loads((study_dir / "study_report.json").read_text())


def run(root: Path, *args: str) -> int:
    return main([*args, f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)])


def test_pruning_prunes_and_records_why(study) -> None:
    _, _, trials, report = study
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned and complete
    for t in pruned:
        assert t.user_attrs["lifecycle"] == "pruned"
        assert t.user_attrs["prune_reason"].startswith("median pruner: pruned after epoch")
        assert t.last_step is not None and t.last_step < 3
    assert all(t.user_attrs["lifecycle"] == "completed" for t in complete)
    assert report["trials"]["pruned"] == len(pruned) and report["trials"]["completed"] == len(complete)
    # trials are numbered as the log's `trial k/N` numbers them: from 1, by their slot in the study
    assert [p["trial"] for p in report["summary"]["pruned"]] == [t.user_attrs["slot"] + 1 for t in pruned]


def test_a_conditional_parameter_never_appears_without_its_parent(study) -> None:
    _, _, trials, _ = study
    optimizers = {t.params["train.optimizer"] for t in trials}
    assert optimizers == {"adamw", "sgd"}, "the test needs both branches"
    for t in trials:
        assert ("train.momentum" in t.params) == (t.params["train.optimizer"] == "sgd")


def test_thresholds_are_calibrated_on_validation_and_used_on_test(study) -> None:
    _, _, trials, report = study
    best = next(t for t in trials if t.user_attrs.get("trial_id") == report["best_trial_id"])
    trial_report = json.loads((Path(best.user_attrs["trial_dir"]) / "evaluation_report.json").read_text())
    thresholds = trial_report["thresholds"]
    assert set(thresholds["criteria"]) == set(SYMPTOMS)
    assert any(t != 0.5 for t in thresholds["criteria"].values())
    at_half = trial_report["history"][trial_report["best_epoch"] - 1]
    calibrated = trial_report["calibrated_validation_metrics"]
    # 0.5 is on the calibration grid, so calibration can only help; the tiny encoder's probabilities sit
    # far from 0.5, so here it must
    assert calibrated["val_criteria_macro_f1"] > at_half["val_criteria_macro_f1"]
    assert report["thresholds"] == thresholds
    for entry in trial_report["checkpoint_validation"]:  # the best and every co-best checkpoint
        assert entry["validation_metrics"]["val_criteria_macro_pr_auc"] == trial_report["best_value"]
    evaluation = report["checkpoint_evaluations"][0]
    assert evaluation["test_metrics"] != evaluation["metrics_at_0_5"]


def test_report_validates_and_holds_the_summary_and_plots(study) -> None:
    root, study_dir, trials, report = study
    validate_report(report, "study_report")
    history = report["summary"]["best_value_history"]
    assert [h["trial"] for h in history] == [t.user_attrs["slot"] + 1 for t in trials] == list(range(1, 7))
    assert history[-1]["best_so_far"] == pytest.approx(report["best_validation_value"])
    plots = sorted(p.name for p in (study_dir / "plots").glob("*.png"))
    expected = ["intermediate_values", "learning_curves", "optimization_history", "param_importances"]
    assert plots == [f"{name}.png" for name in expected]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (study_run,) = client.search_runs(
        [client.get_experiment_by_name("redsm5-hpo").experiment_id], "tags.mlflow.runName LIKE 'study_%'"
    )
    artifacts = {a.path for a in client.list_artifacts(study_run.info.run_id)}
    assert {"study_report.json", "optimization_history.png", "learning_curves.png"} <= artifacts
    lifecycles = {r.data.tags.get("lifecycle") for r in client.search_runs([study_run.info.experiment_id])}
    assert {"completed", "pruned"} <= lifecycles


def test_evaluate_and_report_redo_the_study_from_disk(study, capsys) -> None:
    root, study_dir, _, report = study
    assert run(root, "evaluate", "--study", study_dir.name) == 0
    again = json.loads((study_dir / "study_report.json").read_text())
    assert again["test_metrics"] == pytest.approx(report["test_metrics"])
    assert run(root, "report") == 0
    out = capsys.readouterr().out
    assert f"{report['trials']['pruned']} pruned" in out and "learning_curves.png" in out
    assert run(root, "verify") == 0
