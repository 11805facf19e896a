"""Drive the CLI end to end: a 2-trial x 2-epoch study with the tiny encoder."""

import json
import logging
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from redsm5_hpo.checkpoints.store import CheckpointStore
from redsm5_hpo.cli.main import main
from redsm5_hpo.evaluation.metrics import metric_keys
from redsm5_hpo.evaluation.reports import validate_report
from tests.conftest import CONFIG_DIR, tiny_overrides


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "experiments"
    # PR-AUC separates the tiny encoder's trials (macro-F1 at 0.5 is often 0 for both after 2 epochs)
    overrides = tiny_overrides(root, "hpo.n_trials=2", "train.optimization_metric=val_criteria_macro_pr_auc")
    code = main(["tune", *overrides, "--config-dir", str(CONFIG_DIR), "--no-progress"])
    assert code == 0
    (report_path,) = root.glob("study_*/study_report.json")
    return root, json.loads(report_path.read_text())


def test_study_report_has_every_required_field(study) -> None:
    _, report = study
    validate_report(report, "study_report")
    assert report["optimization_metric"] == "val_criteria_macro_pr_auc"
    assert set(metric_keys("test")) - {"test_loss"} <= set(report["test_metrics"])
    assert report["trials"] == {"requested": 2, "completed": 2, "pruned": 0, "failed": 0}
    assert report["dataset"]["revision"].startswith("sha256:") and report["dataset"]["source"] == "sample"
    quality = report["dataset"]["quality"]
    assert quality["aligned"] == quality["evidence_sentences"] > 0 and quality["skipped"] == {}
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
    config = config_from_dict(report["config"])
    calibrated = evaluate_checkpoint(config, checkpoint, sample_corpus, "test", report["thresholds"])
    for key in ("test_criteria_macro_f1", "test_criteria_micro_f1", "test_evidence_f1"):
        assert calibrated[key] == pytest.approx(report["test_metrics"][key])
    at_half = evaluate_checkpoint(config, checkpoint, sample_corpus, "test")
    evaluation = report["checkpoint_evaluations"][0]
    assert at_half["test_criteria_macro_f1"] == pytest.approx(evaluation["metrics_at_0_5"]["test_criteria_macro_f1"])


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
    out, err = capsys.readouterr()
    assert "no trial of study" in err and "Traceback" not in out + err  # one line each on the terminal
    assert "2 trial(s): EncoderLoadError" in err and err.count("EncoderLoadError") == 1  # the cause said once
    log_files = sorted(root.glob("trial_*/logs/events.jsonl"))
    assert len(log_files) == 2  # one per failed trial: the loop below cannot pass empty
    for log_file in log_files:  # the whole traceback in the trial's JSON log
        (failure,) = [e for e in map(json.loads, log_file.read_text().splitlines()) if e["severity"] == "ERROR"]
        assert failure["traceback"].startswith("Traceback (most recent call last)")
        assert "EncoderLoadError" in failure["traceback"].splitlines()[-1]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    assert sorted(r.info.status for r in runs if r.info.run_name.startswith("trial_")) == ["FAILED", "FAILED"]
    (db,) = root.glob("study_*/optuna.db")
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{db}")
    study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{db}")
    assert all("EncoderLoadError" in t.user_attrs["fail_reason"] for t in study.trials)


def test_study_level_retention_leaves_only_the_best_model(study) -> None:
    root, report = study
    best_dir = root / f"trial_{report['best_trial_id']}"
    trial_dirs = sorted(root.glob("trial_*"))
    assert best_dir in trial_dirs and len(trial_dirs) == report["trials"]["requested"]  # the loop cannot pass empty
    for trial_dir in trial_dirs:
        checkpoints = CheckpointStore(trial_dir / "checkpoints").list() if (trial_dir / "checkpoints").is_dir() else []
        if trial_dir == best_dir:
            assert checkpoints and all(not c.resumable and c.manifest["flags"]["co_best"] for c in checkpoints)
            assert {str(c.path) for c in checkpoints} == set(report["checkpoint_references"])
            for checkpoint in checkpoints:
                validate_report(checkpoint.manifest, "checkpoint_manifest")
        else:
            assert checkpoints == []
            # released after it finished ("released": true), or never above the study's best and pruned as it
            # trained: either way its report names no checkpoint
            trial_report = json.loads((trial_dir / "evaluation_report.json").read_text())
            assert trial_report["checkpoint_references"] == []


def test_dry_run_checks_everything_and_trains_nothing(tmp_path, capsys) -> None:
    code = main(["tune", "--dry-run", *tiny_overrides(tmp_path), "--config-dir", str(CONFIG_DIR)])
    assert code == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "checkpoints: ~" in out and "free" in out
    disk = next(line for line in out.splitlines() if line.startswith("disk under "))
    assert " needed (" in disk  # the preflight's figure
    time_line = next(line for line in out.splitlines() if line.startswith("time: "))
    assert time_line.startswith("time: about ") and "ms per step (measured here)" in time_line
    assert not list(tmp_path.glob("trial_*")) and not list(tmp_path.glob("study_*"))


def test_no_checkpoint_mode_logs_every_metric(tmp_path) -> None:
    args = [
        "train",
        *tiny_overrides(tmp_path, "train.save_checkpoints=false"),
        "--config-dir",
        str(CONFIG_DIR),
        "--no-progress",
    ]
    assert main(args) == 0
    (trial_dir,) = tmp_path.glob("trial_*")
    assert not (trial_dir / "checkpoints").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    for key in set(metric_keys("val")) | {"train_loss"}:
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2]


def test_evaluation_falls_back_past_a_corrupted_best_checkpoint(tmp_path, sample_corpus, caplog, monkeypatch) -> None:
    from redsm5_hpo.config.loading import load_config
    from redsm5_hpo.pipeline import evaluate_checkpoints

    overrides = tiny_overrides(
        tmp_path,
        "train.epochs=3",
        "retention_policy.keep_last_n=3",
        "retention_policy.release_finished_trials=false",
        "train.optimization_metric=val_criteria_macro_pr_auc",
    )
    assert main(["train", *overrides, "--config-dir", str(CONFIG_DIR), "--no-progress"]) == 0
    (trial_dir,) = tmp_path.glob("trial_*")
    report = json.loads((trial_dir / "evaluation_report.json").read_text())
    (best,) = map(Path, report["checkpoint_references"])
    assert len(CheckpointStore(trial_dir / "checkpoints").list()) == 3
    weights = best / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    config = load_config(overrides, CONFIG_DIR)
    monkeypatch.setattr(logging.getLogger("redsm5_hpo"), "propagate", True)  # main() kept them to stdout
    store = CheckpointStore(trial_dir / "checkpoints")
    (evaluation,) = evaluate_checkpoints(config, store, report["checkpoint_references"], sample_corpus, "test")
    assert evaluation["checkpoint"] != str(best)
    assert f"checkpoint {best} is unusable" in caplog.text and "falling back to" in caplog.text


def test_cleanup_lists_then_deletes_only_orphans(study, capsys) -> None:
    root, report = study
    best_checkpoint = Path(report["checkpoint_references"][0])
    best_trial = best_checkpoint.parent.parent
    temp = best_trial / "checkpoints" / ".tmp-epoch_0009-x"
    temp.mkdir()
    unreferenced = best_trial / "checkpoints" / "epoch_0042"
    shutil.copytree(best_checkpoint, unreferenced)
    stray = root / "trial_deadbeef"
    (stray / "logs").mkdir(parents=True)
    (stray / "logs" / "events.jsonl").write_text("{}\n")
    base = ["cleanup", f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR), "--min-age-hours", "0"]
    assert main(base) == 0
    listed = capsys.readouterr().out
    for path in (temp, unreferenced, stray):
        assert str(path) in listed and path.exists()
    assert str(best_checkpoint) + " " not in listed
    assert main([*base, "--execute"]) == 0
    assert not temp.exists() and not unreferenced.exists() and not stray.exists()
    assert (best_checkpoint / "manifest.json").is_file()
    assert len(list(root.glob("trial_*"))) == 2


def test_no_post_text_reaches_logs_or_tracking(study) -> None:
    import csv

    from redsm5_hpo.data.sources import SAMPLE_DIR

    with open(SAMPLE_DIR / "redsm5_annotations.csv", newline="", encoding="utf-8") as f:
        sentences = {row["sentence_text"] for row in csv.DictReader(f)}
    root, _ = study
    tracked = [
        *root.glob("**/logs/*.jsonl"),
        root / "mlflow.db",
        *(p for p in root.glob("mlartifacts/**/*") if p.is_file()),
    ]
    tracked += [*root.glob("trial_*/evaluation_report.json"), *root.glob("study_*/study_report.json")]
    assert len(tracked) > 5
    for path in tracked:
        content = path.read_bytes()
        leaked = [s for s in sentences if s.encode() in content]
        assert not leaked, f"{path} holds post text: {leaked[:2]}"


def test_status_all_lists_every_study_with_its_state_trials_and_best(study, capsys, tmp_path) -> None:
    root, report = study
    assert main(["status", "--all", f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]) == 0
    header, row, total = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:3] == ["study", "state", "trials"]
    trials = report["trials"]
    assert row.split()[:4] == [
        report["study_id"],
        "finished",
        f"{trials['requested']}/{trials['requested']}",
        f"{trials['completed']}/{trials['pruned']}/{trials['failed']}",
    ]
    assert total == f"1 study(ies) under {root}"
    assert main(["status", "--all", f"experiments_dir={tmp_path / 'none'}", "--config-dir", str(CONFIG_DIR)]) == 0
    assert capsys.readouterr().out.startswith(f"no study under {tmp_path / 'none'}")
