"""One trial: train a configuration (fresh or continued from a checkpoint) and write its report."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redsm5_hpo import __version__
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
from redsm5_hpo.checkpoints.store import StoredCheckpoint, load_training_state
from redsm5_hpo.config.schema import Config, HpoConfig, training_seed
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.data.loading import Corpus, load_corpus
from redsm5_hpo.device_errors import DeviceFailed, is_sticky_cuda_error
from redsm5_hpo.devices import Runtime, configure_determinism, reported_nondeterminism, resolve_runtime
from redsm5_hpo.errors import FILES_ONLY, first_line, traceback_text
from redsm5_hpo.evaluation.predict import calibrate, predict, score_calibrated
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.faults import fault_point
from redsm5_hpo.hpo.progress import format_duration, study_time_estimate
from redsm5_hpo.hpo.retention import StudyCheckpoints
from redsm5_hpo.hpo.study import TrialSpec, failure_reason
from redsm5_hpo.hub_token import TokenGate
from redsm5_hpo.interrupts import StopRequested
from redsm5_hpo.layout import TrialDir, experiments_root
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.pipeline.builders import build_model, dataset_input, dataset_tags, split_datasets
from redsm5_hpo.pipeline.lifecycle import Lifecycle, Stage, TrialStart
from redsm5_hpo.pipeline.mirroring import publish
from redsm5_hpo.pipeline.services import open_monitor, open_tracker, system_metrics, trial_stores
from redsm5_hpo.remote import check_bucket, open_bucket
from redsm5_hpo.tracking.base import Tracker
from redsm5_hpo.tracking.logs import TRACEBACK, json_log_file, trial_context
from redsm5_hpo.training.hooks import CheckpointHook, MetricsLoggingHook, Pruner, PruningHook, TrialPruned
from redsm5_hpo.training.loop import FitOptions, FitResult, NonFiniteLossError, TrainingHook, fit, time_training_step

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
    token_gate: TokenGate | None = None
    """Pauses before each checkpoint while the Hugging Face token is expired."""
    pruner: Pruner | None = None
    """Told each epoch's objective; it stops the trial as pruned (``hpo.pruning.EpochReports``)."""
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    """Records each stage the trial enters (in MLflow, and in Optuna for a study's trial, with its run id for
    a later resume)."""
    device_override: str | None = None
    """Run on this device instead of the configured ``train.device`` (``resume --device``)."""


def run_trial(
    config: Config,
    corpus: Corpus,
    context: TrialContext,
    trial_id: str | None = None,
    start: TrialStart = TrialStart.FRESH,
    run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> TrialResult:
    """Train one configuration in ``experiments/trial_<uuid>/`` and write its validation report.

    ``start`` says where training begins: ``FRESH`` from epoch 0 in a new run, ``RESUMED`` from the
    trial's newest valid checkpoint in its MLflow run ``run_id`` (logging only the (metric, step) pairs
    the run does not hold yet), ``ROLLED_BACK`` from that checkpoint in a new run."""
    return TrialRunner(config, corpus, context, trial_id or uuid.uuid4().hex, start, run_id, extra_tags or {}).run()


def stage_of(error: BaseException) -> Stage:
    """The stage a trial ends in when ``error`` stops it."""
    if isinstance(error, StopRequested | DeviceFailed):
        return Stage.INTERRUPTED
    return Stage.PRUNED if isinstance(error, TrialPruned) else Stage.FAILED


@dataclass(frozen=True)
class TrialIdentity:
    """What a trial is: its id, its study and slot (none outside a study), its configuration and data."""

    trial_id: str
    study_id: str | None
    spec: TrialSpec | None
    config: Config
    dataset: dict[str, str]


@dataclass(frozen=True)
class TrialRun:
    """Where a trial's MLflow run is and the device it trains on."""

    run_id: str
    runtime: Runtime


@dataclass(frozen=True)
class Calibration:
    """The decision thresholds calibrated on validation and the validation scores at them."""

    thresholds: dict[str, Any]
    scores: dict[str, float]


def trial_report(
    trial: TrialIdentity, run: TrialRun, fitted: FitResult, best: Sequence[StoredCheckpoint], calibration: Calibration
) -> dict[str, Any]:
    """The trial's ``evaluation_report.json`` (validation scores only, never test scores)."""
    config, spec = trial.config, trial.spec
    return {
        "trial_id": trial.trial_id,
        "study_id": trial.study_id,
        "trial_number": spec.number if spec else None,
        "optimization_metric": config.train.optimization_metric,
        "best_epoch": fitted.best_epoch,
        "best_value": fitted.best_value,
        "validation_metrics": fitted.history[fitted.best_epoch - 1],
        "checkpoint_references": [str(c.path) for c in best],
        "checkpoint_validation": [
            {"checkpoint": str(c.path), "epoch": c.epoch, "validation_metrics": fitted.history[c.epoch - 1]}
            for c in best
        ],
        "params": spec.params if spec else {},
        "seed": training_seed(config),
        "dataset": trial.dataset,
        "runtime": run.runtime.describe(),
        "mlflow_run_id": run.run_id,
        "history": fitted.history,
        "thresholds": calibration.thresholds,
        "calibrated_validation_metrics": calibration.scores,
    }


@dataclass(frozen=True)
class TrialInputs:
    """What a trial trains: the model (on its device) and the train and validation datasets."""

    model: CriteriaEvidenceModel
    train_set: MultiLabelDataset
    val_set: MultiLabelDataset
    logged: set[tuple[str, int]]
    """(metric, step) pairs the run already holds (a resumed run logs none of them again)."""


@dataclass(frozen=True)
class TrialTraining:
    """How it trains: the loop's hooks, the checkpoint manager (none without checkpoints) and where a
    continued trial resumes (the training state of its newest valid checkpoint)."""

    hooks: list[TrainingHook]
    manager: CheckpointManager | None
    resume_from: dict[str, Any] | None


class TrialRunner:
    """One trial as named steps: its directory and MLflow run, then (logging to the trial's JSON file) its
    data and model, hooks and checkpoints, training, calibration and report. Each ``_setup_*`` returns what
    it builds and ``run`` hands it on; every way the trial can end is recorded once, through
    ``context.lifecycle``."""

    def __init__(
        self,
        config: Config,
        corpus: Corpus,
        context: TrialContext,
        trial_id: str,
        start: TrialStart,
        run_id: str | None,
        extra_tags: dict[str, str],
    ) -> None:
        self.config, self.corpus, self.context, self.trial_id = config, corpus, context, trial_id
        self.start, self.resumed_run, self.extra_tags = start, run_id, extra_tags
        self.tracker, self.lifecycle = context.tracker, context.lifecycle
        self.stores = trial_stores(config)
        self.files = TrialDir.of(self.stores.root, trial_id)
        self.identity = TrialIdentity(
            trial_id, context.study_id, context.spec, config, {"source": corpus.source, "revision": corpus.revision}
        )

    def run(self) -> TrialResult:
        try:
            run = self._setup_run()
        except BaseException as e:
            self.lifecycle.enter(stage_of(e))  # before its MLflow run exists
            raise
        try:
            with trial_context(self.trial_id), json_log_file(self.files.events, self.config.logs):
                try:
                    inputs = self._setup_data(run)
                    training = self._setup_training(run, inputs)
                    fitted, kept = self._train(run, inputs, training)
                    result = self._finish(run, inputs, training.manager, fitted, kept)
                except BaseException as e:
                    if not is_sticky_cuda_error(e):
                        self._end_early(run, e)
                        raise
                    failed = DeviceFailed(e)  # this process's CUDA context is lost: a fresh one continues
                    self._end_early(run, failed)
                    raise failed from e
        finally:  # its report and logs, however it ended (another machine may continue it)
            publish(self.stores.bucket, self.stores.root, self.files.path)
        self.lifecycle.enter(Stage.COMPLETED)
        self.tracker.end_run(run.run_id)
        return result

    def _setup_run(self) -> TrialRun:
        """The device, the trial's directory and config (new trials), and its MLflow run (started or reopened)."""
        config, context = self.config, self.context
        runtime = resolve_runtime(config.train, context.device_override)
        configure_determinism(config.train.deterministic)
        self.files.logs.mkdir(parents=True, exist_ok=True)
        if not self.start.from_checkpoint:
            self.files.write_config(config)
            publish(self.stores.bucket, self.stores.root, self.files.path)
        tags = {"trial_id": self.trial_id, "seed": str(training_seed(config)), "code_version": __version__}
        tags |= dataset_tags(self.corpus)
        if context.study_id:
            tags["study_id"] = context.study_id
        if context.spec:
            tags |= {
                "trial_number": str(context.spec.number),
                "trial_progress": f"{context.spec.number + 1}/{context.spec.total}",
            }
        if self.start.same_run and self.resumed_run:
            run_id = self.resumed_run
            self.tracker.reopen_run(run_id)
        else:
            run_id = self.tracker.start_run(self.files.path.name, tags | self.extra_tags, context.parent_run_id)
        self.tracker.set_tags(run_id, runtime.describe())
        self.lifecycle.attach(self.tracker, run_id)
        self.lifecycle.enter(Stage.PREPARING)
        return TrialRun(run_id, runtime)

    def _setup_data(self, run: TrialRun) -> TrialInputs:
        """Params and dataset input (a new run), the model, the datasets and their truncation loss."""
        config, tracker, run_id = self.config, self.tracker, run.run_id
        logged = tracker.logged_metric_steps(run_id) if self.start.same_run else set()
        if not self.start.same_run:
            tracker.log_params(run_id, dataclasses.asdict(config))
            tracker.log_dataset(run_id, dataset_input(self.corpus))
        model, tokenizer = build_model(config, self.corpus, run.runtime)
        train_set, val_set = split_datasets(config, self.corpus, tokenizer, "train", "validation")
        truncation = dict(zip(TRUNCATION_METRICS, (train_set.truncation_loss, val_set.truncation_loss), strict=True))
        if not any((k, 0) in logged for k in truncation):
            tracker.log_metrics(run_id, truncation, step=0)
        fault_point("setup_metrics_logged")
        log.info(
            "trial %s: %d train / %d validation posts (%d / %d %s examples in %d / %d windows), encoder %s on %s in %s",
            self.trial_id,
            len(train_set.posts),
            len(val_set.posts),
            len(train_set),
            len(val_set),
            config.data.input_format,
            len(train_set.examples),
            len(val_set.examples),
            config.model.encoder,
            run.runtime.name,
            run.runtime.precision,
        )
        return TrialInputs(model, train_set, val_set, logged)

    def _setup_training(self, run: TrialRun, inputs: TrialInputs) -> TrialTraining:
        """Metrics and pruning hooks; with checkpoints on, the manager, its hook and the resume point."""
        config, context, model = self.config, self.context, inputs.model
        hooks: list[TrainingHook] = [
            MetricsLoggingHook(self.tracker, run.run_id, config.train.optimization_metric, inputs.logged)
        ]
        if context.pruner:
            hooks.append(PruningHook(context.pruner))
        if not config.train.save_checkpoints:
            return TrialTraining(hooks, None, None)
        study = context.study_checkpoints
        manager = CheckpointManager(
            self.stores.store(self.files),
            study.policy() if study else policy_from_config(config.retention_policy),
            experiments_root(config),
            context.monitor,
            int(config.disk_guard.reserve_mb * MB),
            study,
            context.spec.number if context.spec else None,  # its slot: the logical position that breaks ties
            int(config.remote.cache_max_mb * MB),
            config.remote.flush_timeout_s,
        )
        manager.start(model)
        meta = {
            "architecture": model.architecture_signature(),
            "head_config": dataclasses.asdict(config.model),
            "trial_id": self.trial_id,
            "runtime": run.runtime.describe(),
        }
        final_weights_only = config.retention_policy.release_finished_trials
        hooks.append(
            CheckpointHook(manager, config.train, meta, training_seed(config), context.token_gate, final_weights_only)
        )
        if not self.start.from_checkpoint:
            return TrialTraining(hooks, manager, None)
        loaded = load_first_valid(newest_resumable_first(manager.store.list()), model, model.architecture_signature())
        log.info("trial %s resumes after epoch %d from %s", self.trial_id, loaded.epoch, loaded.path)
        _warn_if_other_runtime(loaded.manifest.get("runtime"), run.runtime)
        return TrialTraining(hooks, manager, load_training_state(loaded))

    def _train(
        self, run: TrialRun, inputs: TrialInputs, training: TrialTraining
    ) -> tuple[FitResult, list[StoredCheckpoint]]:
        """The epochs, then the checkpoints the trial keeps (the write in flight is committed whatever happens)."""
        config, manager = self.config, training.manager
        try:
            self.lifecycle.enter(Stage.RUNNING)
            with system_metrics(config, run.run_id), reported_nondeterminism(f"trial {self.trial_id}"):
                fitted = fit(
                    inputs.model,
                    inputs.train_set,
                    inputs.val_set,
                    config.train,
                    training_seed(config),
                    run.runtime,
                    FitOptions(
                        hooks=training.hooks,
                        progress=self.context.progress,
                        resume_from=training.resume_from,
                        evidence_level=config.evaluation.evidence_metric,
                    ),
                )
            self.lifecycle.enter(Stage.FINISHING)
            kept = manager.finish(config.retention_policy.release_finished_trials) if manager else []
        finally:
            if manager:
                manager.close()  # a trial stopped for another reason still commits the write in flight
        return fitted, kept

    def _finish(
        self,
        run: TrialRun,
        inputs: TrialInputs,
        manager: CheckpointManager | None,
        fitted: FitResult,
        kept: list[StoredCheckpoint],
    ) -> TrialResult:
        """Thresholds calibrated on validation with the best checkpoint, the report, checkpoint byte counts."""
        config, tracker, model = self.config, self.tracker, inputs.model
        level = config.evaluation.evidence_metric
        best = [c for c in kept if float(c.manifest["objective"]) == fitted.best_value]
        if best:  # calibrate the model the study would evaluate: the best checkpoint, not the last epoch
            load_first_valid(best, model, model.architecture_signature())
        val_predictions = predict(model, inputs.val_set, config.train, run.runtime)
        thresholds = calibrate(val_predictions, inputs.val_set, level)
        calibration = Calibration(
            thresholds, score_calibrated(val_predictions, inputs.val_set, "val", thresholds, level)
        )
        log.info(
            "trial %s: thresholds calibrated on validation; %s %.4f at 0.5 -> %.4f",
            self.trial_id,
            "val_criteria_macro_f1",
            fitted.history[fitted.best_epoch - 1]["val_criteria_macro_f1"],
            calibration.scores["val_criteria_macro_f1"],
        )
        report = trial_report(self.identity, run, fitted, best, calibration)
        path = write_report(self.files.report_path, report, "trial_report")
        tracker.log_artifact(run.run_id, path)
        tracker.set_tags(run.run_id, {"best_epoch": str(fitted.best_epoch)})
        if manager:
            written_kept = (manager.bytes_written, sum(c.size_bytes for c in kept))
            tracker.log_metrics(
                run.run_id, dict(zip(CHECKPOINT_METRICS, written_kept, strict=True)), step=config.train.epochs
            )
        return TrialResult(self.trial_id, self.files.path, run.run_id, fitted.best_value, path)

    def _end_early(self, run: TrialRun, error: BaseException) -> None:
        """Interrupted (resumable, its run reopens later), pruned or failed: logged and recorded once."""
        stage = stage_of(error)
        if stage is Stage.INTERRUPTED:
            log.warning("trial %s interrupted (%s); it resumes from its newest checkpoint", self.trial_id, error)
            self.lifecycle.enter(stage)
            self.tracker.end_run(run.run_id, "KILLED")  # `resume` reopens this run and continues in it
        elif stage is Stage.PRUNED:
            log.info("trial %s %s", self.trial_id, error)
            self.lifecycle.enter(stage, pruned_reason=str(error))
            self.tracker.end_run(run.run_id, "KILLED")
        else:
            reason = failure_reason(error)
            log.error(
                "trial %s failed: %s",
                self.trial_id,
                str(error) if isinstance(error, NonFiniteLossError) else reason,
                # a full disk stops the study and the command line prints the whole message once
                extra={TRACEBACK: traceback_text(error), **(FILES_ONLY if isinstance(error, DiskSpaceError) else {})},
            )
            self.lifecycle.enter(stage, fail_reason=reason)
            self.tracker.end_run(run.run_id, "FAILED" if isinstance(error, Exception) else "KILLED")


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
    bucket = open_bucket(config.remote)
    if bucket is not None:
        check_bucket(bucket)
    corpus = load_corpus(config.data, config.seed)
    with open_monitor(config) as monitor, open_tracker(config) as tracker:
        return run_trial(config, corpus, TrialContext(tracker, monitor, progress=progress))


def dry_run(config: Config) -> str:
    """Validate data, encoder loading and disk space (preflight) without training; return the plan, with the
    disk the study needs and its time estimated from one measured training step."""
    runtime = resolve_runtime(config.train)
    corpus = load_corpus(config.data, config.seed)
    model, tokenizer = build_model(config, corpus, runtime)
    full, weights = estimate_checkpoint_bytes(model)
    root = experiments_root(config)
    usage = disk_usage(root)
    needed = minimum_bytes_to_run(full, weights, config.hpo.n_workers) + int(config.disk_guard.reserve_mb * MB)
    lines = [
        f"data: {corpus.source}@{corpus.revision}, splits { {k: len(v) for k, v in corpus.splits.items()} }",
        f"encoder: {config.model.encoder} ({sum(p.numel() for p in model.parameters()):,} parameters)",
        f"device: {runtime.device} ({runtime.name}), precision {runtime.precision}",
        f"study: {study_plan(config.hpo)} x {config.train.epochs} epoch(s), "
        f"optimizing {config.train.optimization_metric}",
        f"search space: {json.dumps(config.hpo.search_space)}",
        f"checkpoints: ~{human_bytes(full)} each ({human_bytes(weights)} as weights only), every "
        f"{config.train.checkpoint_interval_epochs} epoch(s), retention {dataclasses.asdict(config.retention_policy)}",
        f"disk under {root}: {human_bytes(usage.free_bytes)} free; at least {human_bytes(needed)} needed "
        f"({config.hpo.n_workers} trial(s) at a time)",
        time_estimate(config, corpus, model, tokenizer, runtime),
    ]
    if config.train.save_checkpoints and usage.free_bytes < needed:
        raise DiskSpaceError(
            "\n".join([*lines, "preflight failed: not enough free space for one resume point and the best model"])
        )
    return "\n".join([*lines, "dry run: everything checked, nothing trained"])


def study_plan(hpo: HpoConfig) -> str:
    """``5 trial(s) (1 baseline + 4 search)``, with the confirmation trials when ``hpo.confirm`` is on."""
    parts = ["1 baseline"] * hpo.baseline_trial + [f"{hpo.n_trials} search"]
    if hpo.confirm.top_k:
        parts.append(f"{hpo.confirm.top_k} x {hpo.confirm.seeds} confirmation")
    return f"{hpo.planned_trials} trial(s) ({' + '.join(parts)})"


def time_estimate(
    config: Config, corpus: Corpus, model: CriteriaEvidenceModel, tokenizer: Any, runtime: Runtime
) -> str:
    """One line: the study's training time from a measured step of this configuration, or why there is none."""
    train_set, validation_set = split_datasets(config, corpus, tokenizer, "train", "validation")
    try:
        step_s, batches = time_training_step(model, train_set, config.train, runtime, training_seed(config))
    except (RuntimeError, ValueError) as e:  # out of memory on the device, an input the model refuses
        return f"time: cannot estimate it (one training step failed: {first_line(e)})"
    validation_batches = math.ceil(len(validation_set) / config.train.batch_size)
    hpo = config.hpo
    total = study_time_estimate(
        step_s, batches, validation_batches, config.train.epochs, hpo.planned_trials, hpo.n_workers
    )
    searched = "; the searched parameters change it" if hpo.search_space else ""
    return (
        f"time: about {format_duration(total)} of training at {step_s * 1000:.0f} ms per step (measured here) and "
        f"{batches} steps per epoch; set-up, checkpoints and evaluation come on top{searched}"
    )
