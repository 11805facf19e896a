"""Shared pieces of the entry points: file names, Optuna attrs, tracker, disk guard and model builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redsm5_hpo.checkpoints.disk import (
    Thresholds,
)
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.loading import Corpus
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker, default_tracking_uri
from redsm5_hpo.training.seeding import seed_everything

STUDY_REPORT = "study_report.json"
TRIAL_REPORT = "evaluation_report.json"
STUDY_FILE = "study.json"
"""Study identity for resuming: id, Optuna name and storage, MLflow run, resolved config."""
RUN_ID_ATTR = "mlflow_run_id"
ROLLBACK_ATTR = "rollback_epoch"
"""User attr of a re-queued trial that continues from this earlier epoch, in a new MLflow run."""
RESUME_OF_ATTR = "resume_of"
"""User attr of a re-queued trial: the number of the interrupted trial it continues."""


def experiments_root(config: Config) -> Path:
    return Path(config.experiments_dir).resolve()


def open_tracker(config: Config) -> MLflowTracker:
    root = experiments_root(config)
    root.mkdir(parents=True, exist_ok=True)
    uri = config.tracking.uri or default_tracking_uri(root)
    return MLflowTracker(uri, config.tracking.experiment_name, artifact_root=root / "mlartifacts")


def open_monitor(config: Config) -> DiskMonitor:
    g = config.disk_guard
    return DiskMonitor(
        experiments_root(config),
        Thresholds(g.critical_free_fraction, g.error_free_fraction),
        g.interval_s,
        g.info_interval_s,
    )


def build_model(config: Config) -> tuple[CriteriaEvidenceModel, Any]:
    """A fresh model (encoder + heads) and its tokenizer, seeded from ``config.seed``."""
    seed_everything(config.seed)
    encoder = load_encoder(config.model.encoder, config.model.cache_dir, seed=config.seed)
    return CriteriaEvidenceModel(encoder.model, config.model), encoder.tokenizer


def dataset_tags(corpus: Corpus) -> dict[str, str]:
    return {"dataset.source": corpus.source, "dataset.revision": corpus.revision}
