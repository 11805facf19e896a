"""The one place that assembles the parts: validate config, build parts, fit, close.

``run_single`` trains one configuration; ``run_study`` runs the HPO study and evaluates the
best trial on the test split exactly once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from redsm5_hpo import __version__
from redsm5_hpo.checkpoints.store import CheckpointStore, StoredCheckpoint, load_weights
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.loading import config_from_dict
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.data.loading import Corpus, load_corpus
from redsm5_hpo.evaluation.metrics import constant_baselines
from redsm5_hpo.evaluation.predict import predict, score
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.study import TrialSpec, create_study, default_storage, run_trials
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.tracking.base import Tracker
from redsm5_hpo.tracking.logs import json_log_file, trial_context
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker, default_tracking_uri
from redsm5_hpo.training.hooks import CheckpointHook, MetricsLoggingHook
from redsm5_hpo.training.loop import TrainingHook, fit
from redsm5_hpo.training.seeding import seed_everything

log = logging.getLogger(__name__)

STUDY_REPORT = "study_report.json"
TRIAL_REPORT = "evaluation_report.json"


@dataclass(frozen=True)
class TrialResult:
    trial_id: str
    trial_dir: Path
    run_id: str
    best_value: float
    report_path: Path


@dataclass(frozen=True)
class StudyResult:
    study_id: str
    study_dir: Path
    report_path: Path
    report: dict[str, Any]


def open_tracker(config: Config) -> MLflowTracker:
    root = Path(config.experiments_dir)
    root.mkdir(parents=True, exist_ok=True)
    uri = config.tracking.uri or default_tracking_uri(root)
    return MLflowTracker(uri, config.tracking.experiment_name, artifact_root=root / "mlartifacts")


def build_model(config: Config) -> tuple[CriteriaEvidenceModel, Any]:
    """A fresh model (encoder + heads) and its tokenizer, seeded from ``config.seed``."""
    seed_everything(config.seed)
    encoder = load_encoder(config.model.encoder, config.model.cache_dir, seed=config.seed)
    return CriteriaEvidenceModel(encoder.model, config.model), encoder.tokenizer


def dataset_tags(corpus: Corpus) -> dict[str, str]:
    return {"dataset.source": corpus.source, "dataset.revision": corpus.revision}


def run_trial(
    config: Config,
    corpus: Corpus,
    tracker: Tracker,
    study_id: str | None = None,
    spec: TrialSpec | None = None,
    parent_run_id: str | None = None,
    progress: bool = True,
) -> TrialResult:
    """Train one configuration in ``experiments/trial_<uuid>/`` and write its validation report."""
    trial_id = uuid.uuid4().hex
    trial_dir = Path(config.experiments_dir).resolve() / f"trial_{trial_id}"
    (trial_dir / "logs").mkdir(parents=True, exist_ok=True)
    (trial_dir / "config.yaml").write_text(
        yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8"
    )
    tags = {"trial_id": trial_id, "seed": str(config.seed), "code_version": __version__, **dataset_tags(corpus)}
    if study_id:
        tags["study_id"] = study_id
    if spec:
        tags |= {"trial_number": str(spec.number), "trial_progress": f"{spec.number + 1}/{spec.total}"}
    run_id = tracker.start_run(f"trial_{trial_id}", tags, parent_run_id)
    with trial_context(trial_id), json_log_file(trial_dir / "logs" / "events.jsonl"):
        try:
            result = _train_and_report(config, corpus, tracker, run_id, trial_id, trial_dir, study_id, spec, progress)
        except BaseException as e:
            log.error("trial %s failed: %s", trial_id, e)
            tracker.end_run(run_id, "FAILED" if isinstance(e, Exception) else "KILLED")
            raise
    tracker.end_run(run_id)
    return result


def _train_and_report(
    config: Config,
    corpus: Corpus,
    tracker: Tracker,
    run_id: str,
    trial_id: str,
    trial_dir: Path,
    study_id: str | None,
    spec: TrialSpec | None,
    progress: bool,
) -> TrialResult:
    tracker.log_params(run_id, dataclasses.asdict(config))
    model, tokenizer = build_model(config)
    train_set, val_set = (
        MultiLabelDataset(corpus.splits[s], tokenizer, config.data.max_length) for s in ("train", "validation")
    )
    tracker.log_metrics(
        run_id,
        {
            "train_evidence_truncation_loss": train_set.truncation_loss,
            "val_evidence_truncation_loss": val_set.truncation_loss,
        },
        step=0,
    )
    log.info(
        "trial %s: %d train / %d validation posts, encoder %s",
        trial_id,
        len(train_set),
        len(val_set),
        config.model.encoder,
    )
    hooks: list[TrainingHook] = [MetricsLoggingHook(tracker, run_id, config.train.optimization_metric)]
    checkpoint_hook = None
    if config.train.save_checkpoints:
        meta = {
            "architecture": model.architecture_signature(),
            "head_config": dataclasses.asdict(config.model),
            "trial_id": trial_id,
        }
        checkpoint_hook = CheckpointHook(CheckpointStore(trial_dir / "checkpoints"), config.train, meta)
        hooks.append(checkpoint_hook)
    fitted = fit(model, train_set, val_set, config.train, config.seed, hooks, progress)
    kept = checkpoint_hook.prune() if checkpoint_hook else []
    best = [c for c in kept if c.record.objective == fitted.best_value]
    report = {
        "trial_id": trial_id,
        "study_id": study_id,
        "trial_number": spec.number if spec else None,
        "optimization_metric": config.train.optimization_metric,
        "best_epoch": fitted.best_epoch,
        "best_value": fitted.best_value,
        "validation_metrics": fitted.history[fitted.best_epoch - 1],
        "checkpoint_references": [str(c.path) for c in best],
        "params": spec.params if spec else {},
        "seed": config.seed,
        "dataset": {"source": corpus.source, "revision": corpus.revision},
        "mlflow_run_id": run_id,
        "history": fitted.history,
    }
    path = write_report(trial_dir / TRIAL_REPORT, report, "trial_report")
    tracker.log_artifact(run_id, path)
    tracker.set_tags(run_id, {"best_epoch": str(fitted.best_epoch)})
    return TrialResult(trial_id, trial_dir, run_id, fitted.best_value, path)


def run_single(config: Config, progress: bool = True) -> TrialResult:
    """``redsm5-hpo train``: one run of the configuration as given."""
    corpus = load_corpus(config.data, config.seed)
    return run_trial(config, corpus, open_tracker(config), progress=progress)


def run_study(config: Config, progress: bool = True) -> StudyResult:
    """``redsm5-hpo tune``: the study, then one test evaluation of the best trial."""
    if not config.train.save_checkpoints:
        raise ConfigError(["train.save_checkpoints: a study needs checkpoints to evaluate its best trial on test"])
    study_id = uuid.uuid4().hex
    study_dir = Path(config.experiments_dir).resolve() / f"study_{study_id}"
    study_dir.mkdir(parents=True, exist_ok=True)
    with json_log_file(study_dir / "logs" / "events.jsonl"):
        corpus = load_corpus(config.data, config.seed)
        log.info(
            "study %s: data %s@%s, splits %s",
            study_id,
            corpus.source,
            corpus.revision,
            {k: len(v) for k, v in corpus.splits.items()},
        )
        tracker = open_tracker(config)
        study_run = tracker.start_run(
            f"study_{study_id}",
            {"study_id": study_id, "seed": str(config.seed), "code_version": __version__, **dataset_tags(corpus)},
        )
        tracker.log_params(study_run, dataclasses.asdict(config))
        study = create_study(
            config, config.hpo.study_name or f"study_{study_id}", config.hpo.storage or default_storage(study_dir)
        )

        def train_trial(spec: TrialSpec, trial: optuna.Trial) -> float:
            log.info("trial %d/%d: %s", spec.number + 1, spec.total, spec.params)
            try:
                result = run_trial(spec.config, corpus, tracker, study_id, spec, study_run, progress)
            except Exception as e:
                trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
                raise
            trial.set_user_attr("trial_id", result.trial_id)
            trial.set_user_attr("trial_dir", str(result.trial_dir))
            return result.best_value

        def on_trial_end(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            best = max((t.value for t in done if t.value is not None), default=float("nan"))
            tracker.log_metrics(study_run, {"best_so_far": best, "completed_trials": len(done)}, step=trial.number + 1)

        run_trials(study, config, train_trial, on_trial_end)
        report = evaluate_best_trial(study, study_id, config, corpus)
        path = write_report(study_dir / STUDY_REPORT, report, "study_report")
        tracker.log_metrics(study_run, report["test_metrics"], step=0)
        tracker.log_artifact(study_run, path)
        tracker.end_run(study_run)
        log.info("study report: %s", path)
    return StudyResult(study_id, study_dir, path, report)


def evaluate_best_trial(study: optuna.Study, study_id: str, config: Config, corpus: Corpus) -> dict[str, Any]:
    """Score the best trial's best and co-best checkpoints on the test split (the only test access)."""
    states = [t.state for t in study.trials]
    completed = states.count(optuna.trial.TrialState.COMPLETE)
    if not completed:
        reasons = [t.user_attrs.get("fail_reason", "unknown") for t in study.trials]
        raise StudyError(
            f"no trial of study {study_id} completed, so there is nothing to evaluate on test; failures: {reasons}. "
            "Fix the cause above (see the trial logs under experiments/trial_*/logs/) and run the study again."
        )
    best = study.best_trial
    trial_dir = Path(best.user_attrs["trial_dir"])
    trial_config = config_from_dict(yaml.safe_load((trial_dir / "config.yaml").read_text(encoding="utf-8")))
    trial_report = json.loads((trial_dir / TRIAL_REPORT).read_text(encoding="utf-8"))
    checkpoints = [
        c
        for c in CheckpointStore(trial_dir / "checkpoints").list()
        if str(c.path) in trial_report["checkpoint_references"]
    ]
    evaluations = [
        {
            "checkpoint": str(c.path),
            "epoch": c.epoch,
            "test_metrics": evaluate_checkpoint(trial_config, c, corpus, "test"),
        }
        for c in checkpoints
    ]
    if not evaluations:
        raise StudyError(
            f"best trial {best.user_attrs['trial_id']} has no checkpoint left in {trial_dir / 'checkpoints'}"
        )
    y = {s: [p.labels for p in corpus.splits[s]] for s in ("train", "test")}

    return {
        "study_id": study_id,
        "best_trial_id": best.user_attrs["trial_id"],
        "optimization_metric": config.train.optimization_metric,
        "best_validation_value": float(best.value or 0.0),
        "test_metrics": evaluations[0]["test_metrics"],
        "checkpoint_evaluations": evaluations,
        "baselines": constant_baselines(np.array(y["train"]), np.array(y["test"])),
        "config": dataclasses.asdict(trial_config),
        "seeds": {"seed": trial_config.seed, "sampler_seed": config.seed},
        "dataset": {
            "source": corpus.source,
            "revision": corpus.revision,
            "splits": {k: len(v) for k, v in corpus.splits.items()},
        },
        "checkpoint_references": [e["checkpoint"] for e in evaluations],
        "trials": {
            "requested": config.hpo.n_trials,
            "completed": completed,
            "failed": states.count(optuna.trial.TrialState.FAIL),
        },
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "code_version": __version__,
    }


def evaluate_checkpoint(config: Config, checkpoint: StoredCheckpoint, corpus: Corpus, split: str) -> dict[str, float]:
    """Load a verified checkpoint into a model built from ``config`` and score ``split``."""
    model, tokenizer = build_model(config)
    load_weights(checkpoint, model, model.architecture_signature())
    dataset = MultiLabelDataset(corpus.splits[split], tokenizer, config.data.max_length)
    prefix = "test" if split == "test" else "val"
    return score(predict(model, dataset, config.train.batch_size, config.train.evidence_loss_weight), dataset, prefix)
