"""One trial: train a configuration (fresh or continued from a checkpoint) and write its report."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from redsm5_hpo import __version__
from redsm5_hpo.atomic_files import PRIVATE, write_text_atomic
from redsm5_hpo.checkpoints.disk import (
    MB,
    DiskSpaceError,
    disk_usage,
    estimate_checkpoint_bytes,
    human_bytes,
    minimum_bytes_to_run,
)
from redsm5_hpo.checkpoints.loading import load_first_valid, newest_resumable_first
from redsm5_hpo.checkpoints.manager import CheckpointManager
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.checkpoints.retention import policy_from_config
from redsm5_hpo.checkpoints.store import CheckpointStore, load_training_state
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.loading import Corpus, load_corpus
from redsm5_hpo.devices import Runtime, configure_determinism, resolve_runtime
from redsm5_hpo.errors import traceback_text
from redsm5_hpo.evaluation.predict import calibrate, predict, score_calibrated
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.hpo.retention import StudyCheckpoints
from redsm5_hpo.hpo.study import TrialSpec, failure_reason
from redsm5_hpo.hub_token import TokenGate
from redsm5_hpo.interrupts import StopRequested
from redsm5_hpo.pipeline.parts import (
    TRIAL_REPORT,
    build_model,
    dataset_input,
    dataset_tags,
    experiments_root,
    open_monitor,
    open_tracker,
    split_datasets,
    system_metrics,
)
from redsm5_hpo.tracking.base import Tracker
from redsm5_hpo.tracking.logs import TRACEBACK, json_log_file, trial_context
from redsm5_hpo.training.hooks import CheckpointHook, MetricsLoggingHook, PruningHook, TrialPruned
from redsm5_hpo.training.loop import NonFiniteLossError, TrainingHook, fit

log = logging.getLogger(__name__)

TRUNCATION_METRICS = ("train_evidence_truncation_loss", "val_evidence_truncation_loss")
"""Logged once per run at step 0: share of evidence lost to ``data.max_length``."""
CHECKPOINT_METRICS = ("checkpoint_bytes_written", "checkpoint_bytes_kept")
"""Logged once per run at step = epochs when checkpoints are on."""


@dataclass(frozen=True)
class TrialResult:
    trial_id: str
    trial_dir: Path
    run_id: str
    best_value: float
    report_path: Path


@dataclass
class TrialContext:
    """What a trial shares with its study: tracker, disk guard, study-level checkpoints."""

    tracker: Tracker
    monitor: DiskMonitor | None = None
    study_checkpoints: StudyCheckpoints | None = None
    study_id: str | None = None
    spec: TrialSpec | None = None
    parent_run_id: str | None = None
    progress: bool = True
    on_run_started: Callable[[str], None] | None = None
    """Told the MLflow run id as soon as the run exists (the study records it for a later resume)."""
    token_gate: TokenGate | None = None
    """Pauses before each checkpoint while the Hugging Face token is expired."""
    should_prune: Callable[[int, float], bool] | None = None
    """Told each epoch's objective; True stops the trial as pruned."""
    on_lifecycle: Callable[[str], None] | None = None
    """Told each stage the trial enters: preparing, running, finishing."""
    device_override: str | None = None
    """Run on this device instead of the configured ``train.device`` (``resume --device``)."""


def run_trial(
    config: Config,
    corpus: Corpus,
    context: TrialContext,
    trial_id: str | None = None,
    resume_run_id: str | None = None,
    continue_training: bool = False,
    extra_tags: dict[str, str] | None = None,
) -> TrialResult:
    """Train one configuration in ``experiments/trial_<uuid>/`` and write its validation report.

    With ``resume_run_id`` the trial continues from its newest valid checkpoint in that MLflow run,
    logging only the (metric, step) pairs the run does not hold yet. With ``continue_training`` alone
    it continues from that checkpoint in a new run (a rollback)."""
    continue_training = continue_training or resume_run_id is not None
    runtime = resolve_runtime(config.train, context.device_override)
    configure_determinism(config.train.deterministic)
    trial_id = trial_id or uuid.uuid4().hex
    trial_dir = experiments_root(config) / f"trial_{trial_id}"
    (trial_dir / "logs").mkdir(parents=True, exist_ok=True)
    if not continue_training:
        config_text = yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)
        write_text_atomic(trial_dir / "config.yaml", config_text, PRIVATE)  # resume reads it, secrets and all
    tags = {"trial_id": trial_id, "seed": str(config.seed), "code_version": __version__, **dataset_tags(corpus)}
    if context.study_id:
        tags["study_id"] = context.study_id
    if context.spec:
        tags |= {
            "trial_number": str(context.spec.number),
            "trial_progress": f"{context.spec.number + 1}/{context.spec.total}",
        }
    tracker = context.tracker
    if resume_run_id:
        run_id = resume_run_id
        tracker.reopen_run(run_id)
    else:
        run_id = tracker.start_run(f"trial_{trial_id}", tags | (extra_tags or {}), context.parent_run_id)
    if context.on_run_started:
        context.on_run_started(run_id)
    tracker.set_tags(run_id, runtime.describe())
    _enter(context, run_id, "preparing")
    with trial_context(trial_id), json_log_file(trial_dir / "logs" / "events.jsonl", config.logs):
        try:
            result = _train_and_report(
                config, corpus, context, runtime, run_id, trial_id, trial_dir, continue_training, bool(resume_run_id)
            )
        except StopRequested as e:
            log.warning("trial %s interrupted (%s); it can resume from its newest checkpoint", trial_id, e)
            tracker.set_tags(run_id, {"lifecycle": "interrupted"})
            tracker.end_run(run_id, "KILLED")  # `resume` reopens this run and continues in it
            raise
        except TrialPruned as e:
            log.info("trial %s %s", trial_id, e)
            tracker.set_tags(run_id, {"lifecycle": "pruned", "pruned_reason": str(e)})
            tracker.end_run(run_id, "KILLED")
            raise
        except BaseException as e:
            reason = failure_reason(e)
            log.error(
                "trial %s failed: %s",
                trial_id,
                str(e) if isinstance(e, NonFiniteLossError) else reason,
                extra={TRACEBACK: traceback_text(e)},
            )
            tracker.set_tags(run_id, {"lifecycle": "failed", "fail_reason": reason})
            tracker.end_run(run_id, "FAILED" if isinstance(e, Exception) else "KILLED")
            raise
    tracker.set_tags(run_id, {"lifecycle": "completed"})
    tracker.end_run(run_id)
    return result


def _enter(context: TrialContext, run_id: str, stage: str) -> None:
    """The trial's lifecycle stage, as an MLflow tag and (through ``on_lifecycle``) an Optuna user attr."""
    context.tracker.set_tags(run_id, {"lifecycle": stage})
    if context.on_lifecycle:
        context.on_lifecycle(stage)


def _train_and_report(
    config: Config,
    corpus: Corpus,
    context: TrialContext,
    runtime: Runtime,
    run_id: str,
    trial_id: str,
    trial_dir: Path,
    resuming: bool,
    same_run: bool,
) -> TrialResult:
    tracker = context.tracker
    level = config.evaluation.evidence_metric
    logged = tracker.logged_metric_steps(run_id) if same_run else set()
    if not same_run:
        tracker.log_params(run_id, dataclasses.asdict(config))
        tracker.log_dataset(run_id, dataset_input(corpus))
    model, tokenizer = build_model(config, corpus, runtime)
    train_set, val_set = split_datasets(config, corpus, tokenizer, "train", "validation")
    truncation = dict(zip(TRUNCATION_METRICS, (train_set.truncation_loss, val_set.truncation_loss), strict=True))
    if not any((k, 0) in logged for k in truncation):
        tracker.log_metrics(run_id, truncation, step=0)
    log.info(
        "trial %s: %d train / %d validation posts (%d / %d %s examples in %d / %d windows), encoder %s on %s in %s",
        trial_id,
        len(train_set.posts),
        len(val_set.posts),
        len(train_set),
        len(val_set),
        config.data.input_format,
        len(train_set.examples),
        len(val_set.examples),
        config.model.encoder,
        runtime.name,
        runtime.precision,
    )
    hooks: list[TrainingHook] = [MetricsLoggingHook(tracker, run_id, config.train.optimization_metric, logged)]
    if context.should_prune:
        hooks.append(PruningHook(context.should_prune))
    manager = None
    resume_from = None
    if config.train.save_checkpoints:
        study = context.study_checkpoints
        policy = study.policy() if study else policy_from_config(config.retention_policy)
        manager = CheckpointManager(
            CheckpointStore(trial_dir / "checkpoints"),
            policy,
            experiments_root(config),
            context.monitor,
            int(config.disk_guard.reserve_mb * MB),
            study,
            context.spec.number if context.spec else None,  # its slot: the logical position that breaks ties
        )
        manager.start(model)
        meta = {
            "architecture": model.architecture_signature(),
            "head_config": dataclasses.asdict(config.model),
            "trial_id": trial_id,
            "runtime": runtime.describe(),
        }
        gate = context.token_gate
        before_save = (lambda epoch: gate.wait_until_valid(f"the epoch {epoch} checkpoint")) if gate else None
        final_weights_only = config.retention_policy.release_finished_trials
        hooks.append(CheckpointHook(manager, config.train, meta, config.seed, before_save, final_weights_only))
        if resuming:
            loaded = load_first_valid(
                newest_resumable_first(manager.store.list()), model, model.architecture_signature()
            )
            resume_from = load_training_state(loaded)
            log.info("trial %s resumes after epoch %d from %s", trial_id, loaded.epoch, loaded.path)
            _warn_if_other_runtime(loaded.manifest.get("runtime"), runtime)
    try:
        _enter(context, run_id, "running")
        with system_metrics(config, run_id):
            fitted = fit(
                model,
                train_set,
                val_set,
                config.train,
                config.seed,
                hooks,
                context.progress,
                resume_from,
                runtime=runtime,
                evidence_level=level,
            )
        _enter(context, run_id, "finishing")
        kept = manager.finish(config.retention_policy.release_finished_trials) if manager else []
    finally:
        if manager:
            manager.close()  # a trial stopped for another reason still commits the write in flight
    best = [c for c in kept if float(c.manifest["objective"]) == fitted.best_value]
    if best:  # calibrate the model the study would evaluate: the best checkpoint, not the last epoch
        load_first_valid(best, model, model.architecture_signature())
    val_predictions = predict(model, val_set, config.train, runtime)
    thresholds = calibrate(val_predictions, val_set, level)
    calibrated = score_calibrated(val_predictions, val_set, "val", thresholds, level)
    log.info(
        "trial %s: thresholds calibrated on validation; %s %.4f at 0.5 -> %.4f",
        trial_id,
        "val_criteria_macro_f1",
        fitted.history[fitted.best_epoch - 1]["val_criteria_macro_f1"],
        calibrated["val_criteria_macro_f1"],
    )
    report = {
        "trial_id": trial_id,
        "study_id": context.study_id,
        "trial_number": context.spec.number if context.spec else None,
        "optimization_metric": config.train.optimization_metric,
        "best_epoch": fitted.best_epoch,
        "best_value": fitted.best_value,
        "validation_metrics": fitted.history[fitted.best_epoch - 1],
        "checkpoint_references": [str(c.path) for c in best],
        "checkpoint_validation": [
            {"checkpoint": str(c.path), "epoch": c.epoch, "validation_metrics": fitted.history[c.epoch - 1]}
            for c in best
        ],
        "params": context.spec.params if context.spec else {},
        "seed": config.seed,
        "dataset": {"source": corpus.source, "revision": corpus.revision},
        "runtime": runtime.describe(),
        "mlflow_run_id": run_id,
        "history": fitted.history,
        "thresholds": thresholds,
        "calibrated_validation_metrics": calibrated,
    }
    path = write_report(trial_dir / TRIAL_REPORT, report, "trial_report")
    tracker.log_artifact(run_id, path)
    tracker.set_tags(run_id, {"best_epoch": str(fitted.best_epoch)})
    if manager:
        tracker.log_metrics(
            run_id,
            dict(zip(CHECKPOINT_METRICS, (manager.bytes_written, sum(c.size_bytes for c in kept)), strict=True)),
            step=config.train.epochs,
        )
    return TrialResult(trial_id, trial_dir, run_id, fitted.best_value, path)


def _warn_if_other_runtime(saved: dict[str, str] | None, runtime: Runtime) -> None:
    """Resume is exact on the device and precision that wrote the checkpoint; elsewhere it continues."""
    if saved is None:
        return
    now = runtime.describe()
    if (saved.get("device_name"), saved.get("precision")) != (now["device_name"], now["precision"]):
        log.warning(
            "the checkpoint was written on %s in %s; resuming on %s in %s. Training continues, but results "
            "are not promised to equal those of an uninterrupted run (that holds on the same device and precision)",
            saved.get("device_name"),
            saved.get("precision"),
            now["device_name"],
            now["precision"],
        )


def run_single(config: Config, progress: bool = True) -> TrialResult:
    """``redsm5-hpo train``: one run of the configuration as given."""
    resolve_runtime(config.train)  # a missing device fails before any work
    corpus = load_corpus(config.data, config.seed)
    with open_monitor(config) as monitor, open_tracker(config) as tracker:
        return run_trial(config, corpus, TrialContext(tracker, monitor, progress=progress))


def dry_run(config: Config) -> str:
    """Validate data, encoder loading and disk space (preflight) without training; return the plan."""
    runtime = resolve_runtime(config.train)
    corpus = load_corpus(config.data, config.seed)
    model, _ = build_model(config, corpus)
    full, weights = estimate_checkpoint_bytes(model)
    root = experiments_root(config)
    usage = disk_usage(root)
    needed = minimum_bytes_to_run(full, weights, config.hpo.n_workers) + int(config.disk_guard.reserve_mb * MB)
    lines = [
        f"data: {corpus.source}@{corpus.revision}, splits { {k: len(v) for k, v in corpus.splits.items()} }",
        f"encoder: {config.model.encoder} ({sum(p.numel() for p in model.parameters()):,} parameters)",
        f"device: {runtime.device} ({runtime.name}), precision {runtime.precision}",
        f"study: {config.hpo.n_trials} trial(s) x {config.train.epochs} epoch(s), "
        f"optimizing {config.train.optimization_metric}",
        f"search space: {json.dumps(config.hpo.search_space)}",
        f"checkpoints: ~{human_bytes(full)} each ({human_bytes(weights)} as weights only), every "
        f"{config.train.checkpoint_interval_epochs} epoch(s), retention {dataclasses.asdict(config.retention_policy)}",
        f"disk under {root}: {human_bytes(usage.free_bytes)} free; at least {human_bytes(needed)} needed "
        f"({config.hpo.n_workers} trial(s) at a time)",
    ]
    if config.train.save_checkpoints and usage.free_bytes < needed:
        raise DiskSpaceError(
            "\n".join([*lines, "preflight failed: not enough free space for one resume point and the best model"])
        )
    return "\n".join([*lines, "dry run: everything checked, nothing trained"])
