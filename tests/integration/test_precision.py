"""Mixed precision, divergence and devices through the CLI: a bf16 study on the CPU completes with finite
metrics and resumes exactly after a SIGKILL; a diverging trial fails with reason ``non_finite_loss`` while
the study goes on; a device the machine lacks is one clear error before any work."""

import json
import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from redsm5_hpo.cli.main import EXIT_USER_ERROR
from redsm5_hpo.evaluation.reports import validate_report
from tests.helpers.study_cli import cli, metric_counts, outcome

BF16 = [
    "model=tiny",
    "train.precision=bf16",
    "train.epochs=3",
    "train.batch_size=16",
    "hpo.n_trials=1",
    "hpo.baseline_trial=false",
    "train.optimization_metric=val_criteria_macro_pr_auc",
]


@pytest.fixture(scope="module")
def bf16_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("bf16") / "experiments"
    result = cli(root, "tune", *BF16)
    assert result.returncode == 0, result.stderr[-2000:]
    return root, *outcome(root)


def test_a_bf16_study_on_the_cpu_completes_with_finite_metrics_on_record(bf16_study) -> None:
    root, report, _ = bf16_study
    validate_report(report, "study_report")
    assert all(math.isfinite(v) for v in report["test_metrics"].values())
    assert report["runtime"]["evaluation"]["precision"] == "bf16" and report["runtime"]["evaluation"]["device"] == "cpu"
    assert report["runtime"]["training"] == report["runtime"]["evaluation"]
    (trial_dir,) = root.glob("trial_*")
    trial_report = json.loads((trial_dir / "evaluation_report.json").read_text())
    validate_report(trial_report, "trial_report")
    assert trial_report["runtime"]["precision"] == "bf16" and "cpu (" in trial_report["runtime"]["device_name"]
    assert all(math.isfinite(v) for h in trial_report["history"] for v in h.values())
    manifest = json.loads((trial_dir / "checkpoints" / "epoch_0003" / "manifest.json").read_text())
    assert manifest["runtime"] == trial_report["runtime"]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    for run in runs:  # the study run and the trial run
        assert run.data.tags["precision"] == "bf16" and run.data.tags["device"] == "cpu"
        assert run.data.tags["device_name"] == trial_report["runtime"]["device_name"]


@pytest.mark.parametrize("fault", ["mid_epoch:20", "checkpoint_commit:2"], ids=["epoch 2", "background write"])
def test_a_killed_bf16_study_resumes_exactly(bf16_study, tmp_path, fault) -> None:
    _, expected_report, expected_weights = bf16_study
    root = tmp_path / "experiments"
    assert cli(root, "tune", *BF16, fault=fault).returncode == -9
    resumed = cli(root, "resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "exactness" not in resumed.stdout  # same device and precision: no warning
    report, weights = outcome(root)
    assert report["test_metrics"] == expected_report["test_metrics"] and weights == expected_weights
    for name, steps in metric_counts(root).items():
        assert set(steps.values()) == {1}, f"{name} logged twice: {steps}"


def test_a_checkpoint_resumed_in_another_precision_continues_and_says_so(tmp_path) -> None:
    root = tmp_path / "experiments"
    # late in epoch 2: the epoch 1 checkpoint, written in the background, is committed by then
    assert cli(root, "tune", *BF16, fault="mid_epoch:30").returncode == -9
    (trial_dir,) = root.glob("trial_*")
    assert (trial_dir / "checkpoints" / "epoch_0001" / "manifest.json").is_file()
    config = trial_dir / "config.yaml"  # as if the study had been resumed on a machine without bf16
    config.write_text(config.read_text().replace("precision: bf16", "precision: fp32"))
    resumed = cli(root, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "written on" in resumed.stdout and "not promised to equal" in resumed.stdout


def test_a_diverging_trial_fails_with_non_finite_loss_and_the_study_goes_on(tmp_path) -> None:
    root = tmp_path / "experiments"
    # seed 4 draws lr_head 1e30 for the first trial (it diverges in its first epoch), 0.003 for the second
    space = "+hpo.search_space={train:{lr_head:{type:categorical,choices:[1.0e30,0.003]}}}"
    result = cli(
        root,
        "tune",
        "model=tiny",
        "seed=4",
        "hpo.n_trials=2",
        "hpo.baseline_trial=false",
        "train.epochs=2",
        "~hpo.search_space",
        space,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (report_path,) = root.glob("study_*/study_report.json")
    report = json.loads(report_path.read_text())
    assert report["trials"] == {"requested": 2, "completed": 1, "pruned": 0, "failed": 1}
    (failed,) = report["summary"]["failed"]
    assert failed["reason"].startswith("non_finite_loss: the training loss was nan at epoch 1, batch ")
    assert "roll the trial back" in result.stdout.lower()  # the fix is logged
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    (diverged,) = [r for r in runs if r.info.status == "FAILED"]
    assert diverged.data.tags["fail_reason"] == failed["reason"] and diverged.data.tags["lifecycle"] == "failed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_asking_for_cuda_without_one_is_one_clear_error_before_any_work(tmp_path) -> None:
    root = tmp_path / "experiments"
    result = cli(root, "tune", "model=tiny", "train.device=cuda")
    assert result.returncode == EXIT_USER_ERROR
    assert "train.device=cuda: no CUDA device on this machine" in result.stderr
    assert "devices found: cpu" in result.stderr and "train.device=auto" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not list(root.glob("trial_*")) and not list(root.glob("study_*"))


def test_attention_pooling_trains_in_bf16(tmp_path) -> None:
    """What a GPU runs by default (bf16 autocast) with attention pooling, whose padding mask once overflowed
    bf16 and failed every such trial."""
    root = tmp_path / "experiments"
    result = cli(root, "train", "model=tiny", "model.pooling=attention", "train.precision=bf16", "train.epochs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    (report_path,) = root.glob("trial_*/evaluation_report.json")
    report = json.loads(report_path.read_text())
    assert report["runtime"]["precision"] == "bf16" and math.isfinite(report["history"][0]["train_loss"])
