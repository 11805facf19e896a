"""Drive the CLI end to end: a 2-trial x 2-epoch study with the tiny encoder."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from redsm5_hpo.cli.main import main
from redsm5_hpo.evaluation.metrics import metric_keys
from redsm5_hpo.evaluation.reports import validate_report
from tests.conftest import CONFIG_DIR, tiny_overrides


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "experiments"
    code = main(["tune", *tiny_overrides(root, "hpo.n_trials=2"), "--config-dir", str(CONFIG_DIR), "--no-progress"])
    assert code == 0
    (report_path,) = root.glob("study_*/study_report.json")
    return root, json.loads(report_path.read_text())


def test_study_report_has_every_required_field(study) -> None:
    _, report = study
    validate_report(report, "study_report")
    assert report["optimization_metric"] == "val_criteria_macro_f1"
    assert set(metric_keys("test")) - {"test_loss"} <= set(report["test_metrics"])
    assert report["trials"] == {"requested": 2, "completed": 2, "failed": 0}
    assert report["dataset"]["revision"].startswith("sha256:") and report["dataset"]["source"] == "sample"
    assert report["config"]["model"]["encoder"] == "tiny-random"
    for reference in report["checkpoint_references"]:
        assert (Path(reference) / "manifest.json").is_file()
        assert f"trial_{report['best_trial_id']}" in reference


def test_layout_and_trial_reports(study) -> None:
    root, report = study
    trial_dirs = sorted(root.glob("trial_*"))
    assert len(trial_dirs) == 2
    for trial_dir in trial_dirs:
        assert (trial_dir / "config.yaml").is_file() and (trial_dir / "logs" / "events.jsonl").is_file()
        trial_report = json.loads((trial_dir / "evaluation_report.json").read_text())
        validate_report(trial_report, "trial_report")
        assert not any(k.startswith("test_") for k in trial_report["validation_metrics"])
        assert trial_report["study_id"] == report["study_id"]
        events = [json.loads(line) for line in (trial_dir / "logs" / "events.jsonl").read_text().splitlines()]
        assert {e["trial_id"] for e in events} == {trial_dir.name.removeprefix("trial_")}


def test_mlflow_holds_every_epoch_metric_of_every_trial_exactly_once(study) -> None:
    root, report = study
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("redsm5-hpo")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.info.run_name.startswith("trial_")]
    (study_run,) = [r for r in runs if r.info.run_name.startswith("study_")]
    assert len(trials) == 2
    expected = set(metric_keys("val")) | {"train_loss"}
    for run in trials:
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert tags["study_id"] == report["study_id"] and tags["seed"] == "13"
        assert tags["dataset.source"] == "sample" and tags["dataset.revision"] == report["dataset"]["revision"]
        assert run.data.params["train.epochs"] == "2"
        for key in expected:
            steps = Counter(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == {1: 1, 2: 1}, key
    assert study_run.data.metrics["test_criteria_macro_f1"] == pytest.approx(
        report["test_metrics"]["test_criteria_macro_f1"]
    )


def test_test_metrics_equal_a_direct_evaluation_of_the_checkpoint(study, sample_corpus) -> None:
    from redsm5_hpo.checkpoints.store import CheckpointStore
    from redsm5_hpo.config.loading import config_from_dict
    from redsm5_hpo.pipeline import evaluate_checkpoint

    _, report = study
    path = Path(report["checkpoint_references"][0])
    (checkpoint,) = [c for c in CheckpointStore(path.parent).list() if c.path == path]
    metrics = evaluate_checkpoint(config_from_dict(report["config"]), checkpoint, sample_corpus, "test")
    assert metrics["test_criteria_macro_f1"] == pytest.approx(report["test_metrics"]["test_criteria_macro_f1"])


def test_train_command_writes_one_trial(tmp_path, capsys) -> None:
    code = main(
        ["train", *tiny_overrides(tmp_path, "train.epochs=1"), "--config-dir", str(CONFIG_DIR), "--no-progress"]
    )
    assert code == 0
    (trial_dir,) = tmp_path.glob("trial_*")
    assert str(trial_dir / "evaluation_report.json") in capsys.readouterr().out


def test_bad_override_exits_2_with_every_problem(tmp_path, capsys) -> None:
    code = main(
        ["tune", f"experiments_dir={tmp_path}", "train.epochs=0", "model.dropout=2", "--config-dir", str(CONFIG_DIR)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "train.epochs" in err and "model.dropout" in err
    assert not list(tmp_path.glob("study_*"))  # nothing touched disk


def test_module_entry_point_help() -> None:
    for command in ([], ["tune"], ["train"]):
        out = subprocess.run(
            [sys.executable, "-m", "redsm5_hpo", *command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        assert "example" in out


def test_study_whose_trials_all_fail_records_reasons_and_exits_2(tmp_path, capsys) -> None:
    broken = tmp_path / "broken-encoder"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    root = tmp_path / "experiments"
    args = ["tune", *tiny_overrides(root, "hpo.n_trials=2", f"model.encoder={broken}"), "--config-dir", str(CONFIG_DIR)]
    assert main([*args, "--no-progress"]) == 2
    assert "no trial of study" in capsys.readouterr().err
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    assert sorted(r.info.status for r in runs if r.info.run_name.startswith("trial_")) == ["FAILED", "FAILED"]
    (db,) = root.glob("study_*/optuna.db")
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{db}")
    study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{db}")
    assert all("EncoderLoadError" in t.user_attrs["fail_reason"] for t in study.trials)
