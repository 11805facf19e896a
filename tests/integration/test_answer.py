"""A study whose search could not tell its trials apart says so, in its report and on the console."""

from __future__ import annotations

import json

from redsm5_hpo.cli.main import main
from tests.conftest import CONFIG_DIR


def test_a_study_with_no_signal_warns_once_in_the_report_and_on_the_console(tmp_path, capsys) -> None:
    root = tmp_path / "experiments"
    overrides = [
        "model=tiny",
        "hpo.n_trials=2",
        "hpo.baseline_trial=false",
        "train.epochs=1",
        f"experiments_dir={root}",
    ]
    assert main(["tune", *overrides, "--config-dir", str(CONFIG_DIR), "--no-progress"]) == 0
    out = capsys.readouterr().out
    (first,) = [line for line in out.splitlines() if "progress: the first epoch took" in line]
    assert "ETA unknown" not in first and "ETA " in first  # an estimate before any trial ended
    (path,) = root.glob("study_*/study_report.json")
    report = json.loads(path.read_text())
    values = [h["value"] for h in report["summary"]["best_value_history"]]
    assert values == [0.0, 0.0]  # one epoch of the random tiny encoder predicts no criterion
    (warning,) = [w for w in report["warnings"] if "no signal" in w]
    assert out.count(f"warning: {warning}") == 1
    assert main(["report", f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]) == 0
    assert f"warning: {warning}" in capsys.readouterr().out  # `report` recomputes and prints it too


def test_every_test_metric_has_its_interval_in_the_report_the_console_and_mlflow(tmp_path, capsys) -> None:
    from mlflow.tracking import MlflowClient

    root = tmp_path / "experiments"
    overrides = [
        "model=tiny",
        "hpo.n_trials=1",
        "hpo.baseline_trial=false",
        "train.epochs=2",
        "evaluation.bootstrap_samples=200",
    ]
    overrides += ["evaluation.confidence=0.9", f"experiments_dir={root}"]
    assert main(["tune", *overrides, "--config-dir", str(CONFIG_DIR), "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = json.loads(next(root.glob("study_*/study_report.json")).read_text())
    intervals = report["test_intervals"]
    paper = {f"test_paper_{k}" for k in ("micro_f1", "macro_f1", "weighted_f1", "exact_match_accuracy")}
    assert set(intervals) == {k for k in report["test_metrics"] if k != "test_loss"} | paper
    assert all(low <= high for low, high in intervals.values())
    assert report["interval_method"] == {
        "method": "percentile bootstrap, test posts resampled as units",
        "samples": 200,
        "confidence": 0.9,
        "seed": 13,
    }
    low, high = intervals["test_criteria_macro_f1"]
    macro = report["test_metrics"]["test_criteria_macro_f1"]
    assert f"macro-F1 {macro:.4f} [{low:.3f}, {high:.3f}]" in out and "90% percentile bootstrap" in out
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    (study_run,) = [r for r in runs if r.info.run_name.startswith("study_")]
    assert study_run.data.metrics["test_criteria_macro_f1_ci_low"] == low
    assert study_run.data.metrics["test_paper_macro_f1_ci_high"] == intervals["test_paper_macro_f1"][1]
    assert main(["verify", f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]) == 0  # each once
