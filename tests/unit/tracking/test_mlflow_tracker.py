import json
import logging

from redsm5_hpo.tracking.base import flatten_params
from redsm5_hpo.tracking.logs import json_log_file, setup_logging, trial_context
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker, default_tracking_uri


def test_flatten_params() -> None:
    assert flatten_params({"train": {"lr": 0.1, "x": {}}, "seed": 3}) == {
        "train.lr": "0.1",
        "train.x": "{}",
        "seed": "3",
    }


def test_json_log_lines_carry_required_fields(tmp_path) -> None:
    setup_logging()
    path = tmp_path / "events.jsonl"
    with json_log_file(path), trial_context("trial-abc"):
        logging.getLogger("redsm5_hpo.training.loop").info("epoch %d done", 3, extra={"step": 3})
    record = json.loads(path.read_text().splitlines()[-1])
    assert record["message"] == "epoch 3 done"
    assert (record["severity"], record["component"], record["trial_id"], record["step"]) == (
        "INFO",
        "training.loop",
        "trial-abc",
        3,
    )
    assert "timestamp" in record


def test_mlflow_tracker_logs_metrics_with_steps(tmp_path) -> None:
    tracker = MLflowTracker(default_tracking_uri(tmp_path), "exp", artifact_root=tmp_path / "artifacts")
    run = tracker.start_run("r", {"study_id": "s1"})
    tracker.log_params(run, {"train": {"lr": 0.1}})
    tracker.log_metrics(run, {"val_loss": 0.5}, step=1)
    tracker.log_metrics(run, {"val_loss": 0.4}, step=2)
    (tmp_path / "a.json").write_text("{}")
    tracker.log_artifact(run, tmp_path / "a.json")
    tracker.end_run(run)
    again = MLflowTracker(default_tracking_uri(tmp_path), "exp")  # reopens the same experiment
    history = again.client.get_metric_history(run, "val_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.4)]
    data = again.client.get_run(run).data
    assert data.params["train.lr"] == "0.1" and data.tags["study_id"] == "s1"
    assert again.experiment_id == tracker.experiment_id
