"""A tiny study that minimizes its validation loss, scores evidence by sentences and splits as the
published baselines did: the loss is minimized everywhere (best epoch, kept checkpoints, pruning, best
trial, best so far), every evidence level and per-criterion PR-AUC reach MLflow, and the report carries
the paper-protocol block on the paper's test split."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from redsm5_hpo.checkpoints.store import CheckpointStore
from redsm5_hpo.cli.main import main
from redsm5_hpo.evaluation.reports import validate_report
from redsm5_hpo.labels import SYMPTOMS
from tests.conftest import CONFIG_DIR

OVERRIDES = [
    "model=tiny",
    "hpo.n_trials=5",
    "hpo.pruner=median",
    "hpo.pruner_startup_trials=1",
    "hpo.pruner_warmup_epochs=0",
    "train.epochs=3",
    "train.optimization_metric=val_loss",
    "evaluation.evidence_metric=sentence",
    "data.split_protocol=paper",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("loss") / "experiments"
    args = ["tune", *OVERRIDES, f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR), "--no-progress"]
    assert main(args) == 0
    (study_dir,) = root.glob("study_*")
    saved = json.loads((study_dir / "study.json").read_text())
    optuna_study = optuna.load_study(study_name=saved["study_name"], storage=saved["storage"])
    return root, study_dir, optuna_study, json.loads((study_dir / "study_report.json").read_text())


def trial_report(trial: optuna.trial.FrozenTrial) -> dict:
    return json.loads((Path(trial.user_attrs["trial_dir"]) / "evaluation_report.json").read_text())


def test_each_trial_keeps_its_lowest_loss_epoch(study) -> None:
    _, _, optuna_study, _ = study
    assert optuna_study.direction == optuna.study.StudyDirection.MINIMIZE
    complete = [t for t in optuna_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 2
    for trial in complete:
        own = trial_report(trial)
        losses = [h["val_loss"] for h in own["history"]]
        assert max(losses) > min(losses)  # else the direction could not show
        assert trial.value == own["best_value"] == min(losses)
        assert own["best_epoch"] == 1 + losses.index(min(losses))
    best_trial = trial_report(optuna_study.best_trial)
    kept = CheckpointStore(Path(optuna_study.best_trial.user_attrs["trial_dir"]) / "checkpoints").list()
    assert kept and {str(c.path) for c in kept} == set(best_trial["checkpoint_references"])
    for checkpoint in kept:
        assert checkpoint.manifest["direction"] == "minimize"
        assert checkpoint.manifest["objective"] == best_trial["best_value"]


def test_the_study_minimizes_best_trial_best_so_far_release_and_pruning(study) -> None:
    _, _, optuna_study, report = study
    complete = [t for t in optuna_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    lowest = min(complete, key=lambda t: t.value)
    assert report["best_trial_id"] == lowest.user_attrs["trial_id"]
    assert report["best_validation_value"] == lowest.value
    running_min, expected = None, []
    for entry in report["summary"]["best_value_history"]:
        if entry["state"] == "complete":
            running_min = entry["value"] if running_min is None else min(running_min, entry["value"])
        expected.append(running_min)
    assert [h["best_so_far"] for h in report["summary"]["best_value_history"]] == expected
    for trial in complete:  # only the lowest trial keeps checkpoints once the study ends
        left = CheckpointStore(Path(trial.user_attrs["trial_dir"]) / "checkpoints").list()
        assert bool(left) == (trial.number == lowest.number)
    for trial in optuna_study.trials:  # the median pruner stops a trial whose loss is above the median
        if trial.state == optuna.trial.TrialState.PRUNED:
            step = trial.last_step
            earlier = [
                t.intermediate_values[step]
                for t in complete
                if t.number < trial.number and step in t.intermediate_values
            ]
            assert trial.intermediate_values[step] > statistics.median(earlier)


def test_every_level_and_criterion_reaches_mlflow_and_the_report(study) -> None:
    root, _, _, report = study
    validate_report(report, "study_report")
    metrics = report["test_metrics"]
    assert metrics["test_evidence_f1"] == metrics["test_evidence_sentence_f1"]
    for level in ("char", "sentence", "span"):
        assert 0.0 <= metrics[f"test_evidence_{level}_f1"] <= 1.0
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    trial_runs = [r for r in runs if r.info.run_name.startswith("trial_")]
    (study_run,) = [r for r in runs if r.info.run_name.startswith("study_")]
    for run in trial_runs:
        assert {f"val_pr_auc_{s}" for s in SYMPTOMS} <= set(run.data.metrics)
        assert {"val_evidence_span_f1", "val_evidence_sentence_recall", "val_evidence_char_precision"} <= set(
            run.data.metrics
        )
    paper = report["paper_metrics"]
    assert study_run.data.metrics["test_paper_macro_f1"] == pytest.approx(paper["macro_f1"])
    assert study_run.data.metrics["test_paper_exact_match_accuracy"] == pytest.approx(paper["exact_match_accuracy"])


def test_the_paper_protocol_block_is_on_the_papers_test_split(study, capsys) -> None:
    root, _, _, report = study
    paper = report["paper_metrics"]
    assert paper["split_protocol"] == "paper"
    assert report["dataset"]["splits"]["test"] == paper["posts"] == 72  # 20% of the 360 sample posts
    assert sum(paper["support"].values()) >= paper["posts"]  # every post has a symptom or NO_SYMPTOMS
    assert paper["support"]["NO_SYMPTOMS"] > 0
    assert main(["report", f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]) == 0
    out = capsys.readouterr().out
    assert "paper protocol (10 classes, threshold 0.5, 72 test posts)" in out
    assert main(["verify", f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]) == 0


def test_a_report_from_before_the_paper_block_is_rewritten_by_evaluate(study, capsys) -> None:
    root, study_dir, _, report = study
    path = study_dir / "study_report.json"
    path.write_text(json.dumps({k: v for k, v in report.items() if k != "paper_metrics"}))
    assert main(["report", f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]) == 2
    assert f"redsm5-hpo evaluate --study {study_dir.name}" in capsys.readouterr().err
    evaluate = ["evaluate", "--study", study_dir.name, f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]
    assert main(evaluate) == 0
    assert json.loads(path.read_text())["paper_metrics"] == report["paper_metrics"]
