"""MLflow behind the ``Tracker`` interface, using explicit run ids (no global active run)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from redsm5_hpo.tracking.base import flatten_params
from redsm5_hpo.tracking.sanitize import mask_secrets

MAX_PARAM_CHARS = 6000
MAX_BATCH = 100
MAX_METRICS = 1000
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def default_tracking_uri(experiments_dir: Path) -> str:
    """The embedded default: a SQLite database under the experiments directory."""
    return f"sqlite:///{Path(experiments_dir).resolve() / 'mlflow.db'}"


class MLflowTracker:
    def __init__(self, uri: str, experiment_name: str, artifact_root: Path | None = None):
        from mlflow.tracking import MlflowClient

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # retries are the journal's, with backoff
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            location = Path(artifact_root).resolve().as_uri() if artifact_root else None
            self.experiment_id = self.client.create_experiment(experiment_name, artifact_location=location)
        else:
            self.experiment_id = experiment.experiment_id
        if (experiment.tags if experiment else {}).get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
            # MLflow 3's UI infers an untagged experiment's kind and may open it on GenAI traces
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)

    def start_run(self, name: str, tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        all_tags = {k: mask_secrets(str(v)) for k, v in tags.items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        return str(self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = [Param(k, mask_secrets(v)[:MAX_PARAM_CHARS]) for k, v in flatten_params(params).items()]
        for i in range(0, len(flat), MAX_BATCH):
            self.client.log_batch(run_id, params=flat[i : i + MAX_BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.log_metric_points(run_id, [(k, float(v), now, step) for k, v in metrics.items()])

    def log_metric_points(self, run_id: str, points: Sequence[tuple[str, float, int, int]]) -> None:
        """Log (metric, value, timestamp_ms, step) points with the timestamps they were measured at."""
        from mlflow.entities import Metric

        batch = [Metric(key, float(value), int(ts), int(step)) for key, value, ts, step in points]
        for i in range(0, len(batch), MAX_METRICS):
            self.client.log_batch(run_id, metrics=batch[i : i + MAX_METRICS])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, mask_secrets(str(v))) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def log_dataset(self, run_id: str, dataset: Mapping[str, Any]) -> None:
        """An MLflow dataset input (the runs table's Dataset column): name, digest, source and revision,
        and the posts per split as its profile."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        source = {"uri": mask_secrets(str(dataset["source"])), "revision": str(dataset["revision"])}
        entity = Dataset(
            name=str(dataset["name"]),
            digest=str(dataset["digest"]),
            source_type=str(dataset.get("source_type", "local")),
            source=json.dumps(source),
            profile=json.dumps({"num_rows": sum(dataset["splits"].values()), "splits": dataset["splits"]}),
        )
        context = InputTag("mlflow.data.context", str(dataset.get("context", "training")))
        self.client.log_inputs(run_id, datasets=[DatasetInput(entity, tags=[context])])

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def reopen_run(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def logged_metric_steps(self, run_id: str) -> set[tuple[str, int]]:
        return {(key, step) for key, step, _ in self.metric_points(run_id)}

    def metric_points(self, run_id: str, keys: Iterable[str] | None = None) -> list[tuple[str, int, int]]:
        """Every (metric, step, timestamp_ms) the run holds, duplicates included, for ``keys`` (default all)."""
        names = list(keys) if keys is not None else list(self.client.get_run(run_id).data.metrics)
        points: list[tuple[str, int, int]] = []
        for key in names:
            points.extend((key, m.step, m.timestamp) for m in self.client.get_metric_history(run_id, key))
        return points

    def close(self) -> None:
        """Every call above is synchronous: nothing is buffered here (``JournalingTracker`` buffers)."""
