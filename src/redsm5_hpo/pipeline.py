"""The one place that assembles the parts: validate config, build parts, fit, close.

``run_single`` trains one configuration; ``run_study`` runs the HPO study and evaluates the
best trial on the test split exactly once; ``dry_run`` checks everything up to training.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from redsm5_hpo import __version__
from redsm5_hpo.atomic_files import write_json_atomic
from redsm5_hpo.checkpoints.disk import (
    MB,
    DiskSpaceError,
    Thresholds,
    disk_usage,
    estimate_checkpoint_bytes,
    human_bytes,
    minimum_bytes_to_run,
)
from redsm5_hpo.checkpoints.loading import best_first, load_first_valid, newest_resumable_first
from redsm5_hpo.checkpoints.manager import CheckpointManager
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.checkpoints.retention import policy_from_config
from redsm5_hpo.checkpoints.store import CheckpointStore, StoredCheckpoint, load_training_state, verify
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.loading import apply_overrides, config_from_dict
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.data.loading import Corpus, load_corpus
from redsm5_hpo.evaluation.metrics import constant_baselines
from redsm5_hpo.evaluation.predict import predict, score
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.faults import fault_point
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.lock import study_lock
from redsm5_hpo.hpo.retention import RESUMABLE_ATTR, StudyCheckpoints
from redsm5_hpo.hpo.study import REQUEUED_ATTR, TrialSpec, create_study, default_storage, run_trials
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
STUDY_FILE = "study.json"
"""Study identity for resuming: id, Optuna name and storage, MLflow run, resolved config."""
RUN_ID_ATTR = "mlflow_run_id"
ROLLBACK_ATTR = "rollback_epoch"
"""User attr of a re-queued trial that continues from this earlier epoch, in a new MLflow run."""
RESUME_OF_ATTR = "resume_of"
"""User attr of a re-queued trial: the number of the interrupted trial it continues."""


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
    trial_id = trial_id or uuid.uuid4().hex
    trial_dir = experiments_root(config) / f"trial_{trial_id}"
    (trial_dir / "logs").mkdir(parents=True, exist_ok=True)
    if not continue_training:
        (trial_dir / "config.yaml").write_text(
            yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8"
        )
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
    with trial_context(trial_id), json_log_file(trial_dir / "logs" / "events.jsonl"):
        try:
            result = _train_and_report(
                config, corpus, context, run_id, trial_id, trial_dir, continue_training, bool(resume_run_id)
            )
        except BaseException as e:
            log.error("trial %s failed: %s", trial_id, type(e).__name__)
            tracker.end_run(run_id, "FAILED" if isinstance(e, Exception) else "KILLED")
            raise
    tracker.end_run(run_id)
    return result


def _train_and_report(
    config: Config,
    corpus: Corpus,
    context: TrialContext,
    run_id: str,
    trial_id: str,
    trial_dir: Path,
    resuming: bool,
    same_run: bool,
) -> TrialResult:
    tracker = context.tracker
    logged = tracker.logged_metric_steps(run_id) if same_run else set()
    if not same_run:
        tracker.log_params(run_id, dataclasses.asdict(config))
    model, tokenizer = build_model(config)
    train_set, val_set = (
        MultiLabelDataset(corpus.splits[s], tokenizer, config.data.max_length) for s in ("train", "validation")
    )
    truncation = {
        "train_evidence_truncation_loss": train_set.truncation_loss,
        "val_evidence_truncation_loss": val_set.truncation_loss,
    }
    if not any((k, 0) in logged for k in truncation):
        tracker.log_metrics(run_id, truncation, step=0)
    log.info(
        "trial %s: %d train / %d validation posts, encoder %s",
        trial_id,
        len(train_set),
        len(val_set),
        config.model.encoder,
    )
    hooks: list[TrainingHook] = [MetricsLoggingHook(tracker, run_id, config.train.optimization_metric, logged)]
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
        )
        manager.start(model)
        meta = {
            "architecture": model.architecture_signature(),
            "head_config": dataclasses.asdict(config.model),
            "trial_id": trial_id,
        }
        hooks.append(CheckpointHook(manager, config.train, meta, config.seed))
        if resuming:
            loaded = load_first_valid(
                newest_resumable_first(manager.store.list()), model, model.architecture_signature()
            )
            resume_from = load_training_state(loaded)
            log.info("trial %s resumes after epoch %d from %s", trial_id, loaded.epoch, loaded.path)
    fitted = fit(model, train_set, val_set, config.train, config.seed, hooks, context.progress, resume_from)
    kept = manager.finish(config.retention_policy.release_finished_trials) if manager else []
    best = [c for c in kept if c.record.objective == fitted.best_value]
    report = {
        "trial_id": trial_id,
        "study_id": context.study_id,
        "trial_number": context.spec.number if context.spec else None,
        "optimization_metric": config.train.optimization_metric,
        "best_epoch": fitted.best_epoch,
        "best_value": fitted.best_value,
        "validation_metrics": fitted.history[fitted.best_epoch - 1],
        "checkpoint_references": [str(c.path) for c in best],
        "params": context.spec.params if context.spec else {},
        "seed": config.seed,
        "dataset": {"source": corpus.source, "revision": corpus.revision},
        "mlflow_run_id": run_id,
        "history": fitted.history,
    }
    path = write_report(trial_dir / TRIAL_REPORT, report, "trial_report")
    tracker.log_artifact(run_id, path)
    tracker.set_tags(run_id, {"best_epoch": str(fitted.best_epoch)})
    if manager:
        tracker.log_metrics(
            run_id,
            {
                "checkpoint_bytes_written": manager.bytes_written,
                "checkpoint_bytes_kept": sum(c.size_bytes for c in kept),
            },
            step=config.train.epochs,
        )
    return TrialResult(trial_id, trial_dir, run_id, fitted.best_value, path)


def run_single(config: Config, progress: bool = True) -> TrialResult:
    """``redsm5-hpo train``: one run of the configuration as given."""
    corpus = load_corpus(config.data, config.seed)
    with open_monitor(config) as monitor:
        return run_trial(config, corpus, TrialContext(open_tracker(config), monitor, progress=progress))


def dry_run(config: Config) -> str:
    """Validate data, encoder loading and disk space (preflight) without training; return the plan."""
    corpus = load_corpus(config.data, config.seed)
    model, _ = build_model(config)
    full, weights = estimate_checkpoint_bytes(model)
    root = experiments_root(config)
    usage = disk_usage(root)
    needed = minimum_bytes_to_run(full, weights) + int(config.disk_guard.reserve_mb * MB)
    lines = [
        f"data: {corpus.source}@{corpus.revision}, splits { {k: len(v) for k, v in corpus.splits.items()} }",
        f"encoder: {config.model.encoder} ({sum(p.numel() for p in model.parameters()):,} parameters)",
        f"study: {config.hpo.n_trials} trial(s) x {config.train.epochs} epoch(s), "
        f"optimizing {config.train.optimization_metric}",
        f"search space: {json.dumps(config.hpo.search_space)}",
        f"checkpoints: ~{human_bytes(full)} each ({human_bytes(weights)} as weights only), every "
        f"{config.train.checkpoint_interval_epochs} epoch(s), retention {dataclasses.asdict(config.retention_policy)}",
        f"disk under {root}: {human_bytes(usage.free_bytes)} free; at least {human_bytes(needed)} needed",
    ]
    if config.train.save_checkpoints and usage.free_bytes < needed:
        raise DiskSpaceError(
            "\n".join([*lines, "preflight failed: not enough free space for one resume point and the best model"])
        )
    return "\n".join([*lines, "dry run: everything checked, nothing trained"])


def find_study_dir(config: Config, study: str | None) -> Path:
    """``experiments/study_<id>`` for ``study`` (an id or a directory name), else the newest study."""
    root = experiments_root(config)
    if study:
        for candidate in (root / study, root / f"study_{study}"):
            if (candidate / STUDY_FILE).is_file():
                return candidate
        raise StudyError(f"no study {study!r} under {root} (looked for {STUDY_FILE}); list them with `ls {root}`")
    studies = sorted(root.glob(f"study_*/{STUDY_FILE}"), key=lambda p: p.stat().st_mtime)
    if not studies:
        raise StudyError(f"no study to resume under {root}; start one with `redsm5-hpo tune`")
    return studies[-1].parent


def run_study(config: Config, progress: bool = True, resume_dir: Path | None = None) -> StudyResult:
    """``redsm5-hpo tune`` / ``resume``: the study, then one test evaluation of the best trial.

    A study directory that already holds ``study.json`` (``resume_dir``, or ``tune`` with the
    ``hpo.study_name`` of an existing study) is continued with its saved configuration: finished trials
    stay as they are, interrupted trials resume from their newest valid checkpoint in the same MLflow run
    (or restart cleanly if they never saved one), and the remaining trials run."""
    if not config.train.save_checkpoints:
        raise ConfigError(["train.save_checkpoints: a study needs checkpoints to evaluate its best trial on test"])
    if (
        resume_dir is None
        and config.hpo.study_name
        and (experiments_root(config) / config.hpo.study_name / STUDY_FILE).is_file()
    ):
        resume_dir = experiments_root(config) / config.hpo.study_name
    saved = json.loads((resume_dir / STUDY_FILE).read_text(encoding="utf-8")) if resume_dir else None
    if saved:
        config = config_from_dict(saved["config"])
    study_name = saved["study_name"] if saved else config.hpo.study_name or f"study_{uuid.uuid4().hex}"
    study_id = study_name.removeprefix("study_")
    study_dir = experiments_root(config) / study_name
    study_dir.mkdir(parents=True, exist_ok=True)
    with study_lock(study_dir), json_log_file(study_dir / "logs" / "events.jsonl"), open_monitor(config) as monitor:
        corpus = load_corpus(config.data, config.seed)
        splits = {k: len(v) for k, v in corpus.splits.items()}
        log.info("study %s: data %s@%s, splits %s", study_id, corpus.source, corpus.revision, splits)
        tracker = open_tracker(config)
        storage = saved["storage"] if saved else config.hpo.storage or default_storage(study_dir)
        if saved:
            study_run = str(saved["mlflow_run_id"])
            tracker.reopen_run(study_run)
            log.info("resuming study %s", study_id)
            fault_point("resume_setup")
        else:
            tags = {"study_id": study_id, "seed": str(config.seed), "code_version": __version__, **dataset_tags(corpus)}
            study_run = tracker.start_run(study_name, tags)
            tracker.log_params(study_run, dataclasses.asdict(config))
            record = {
                "study_id": study_id,
                "study_name": study_name,
                "storage": storage,
                "mlflow_run_id": study_run,
                "config": dataclasses.asdict(config),
            }
            write_json_atomic(study_dir / STUDY_FILE, record)
        study = create_study(config, study_name, storage)
        study_checkpoints = StudyCheckpoints(study, config.retention_policy)
        disk_errors: list[DiskSpaceError] = []

        def train_trial(spec: TrialSpec, trial: optuna.Trial) -> float:
            origin = trial.user_attrs.get(RESUME_OF_ATTR)
            previous = study.trials[origin].user_attrs if origin is not None else {}
            trial_id = previous.get("trial_id") or uuid.uuid4().hex
            trial_dir = experiments_root(config) / f"trial_{trial_id}"
            trial.set_user_attr("trial_id", trial_id)
            trial.set_user_attr("trial_dir", str(trial_dir))
            trial_config, extra_tags = spec.config, {}
            resume_run_id = previous.get(RUN_ID_ATTR)
            if origin is not None:  # the trial's own config: a rollback may have changed it
                trial_config = config_from_dict(yaml.safe_load((trial_dir / "config.yaml").read_text(encoding="utf-8")))
            if ROLLBACK_ATTR in trial.user_attrs:  # continue from the earlier checkpoint in a new run
                extra_tags = {
                    "rolled_back_from": str(resume_run_id),
                    "rollback_epoch": str(trial.user_attrs[ROLLBACK_ATTR]),
                }
                resume_run_id = None
            if resume_run_id:
                trial.set_user_attr(RUN_ID_ATTR, resume_run_id)
            if origin is not None:
                log.info("resuming interrupted trial %d (re-queued as trial %d): %s", origin, spec.number, spec.params)
            else:
                log.info("trial %d/%d: %s", spec.number + 1, spec.total, spec.params)
            context = TrialContext(
                tracker,
                monitor,
                study_checkpoints,
                study_id,
                spec,
                study_run,
                progress,
                on_run_started=lambda run_id: trial.set_user_attr(RUN_ID_ATTR, run_id),
            )
            try:
                continuing = origin is not None
                return run_trial(
                    trial_config, corpus, context, trial_id, resume_run_id, continuing, extra_tags
                ).best_value
            except Exception as e:
                trial.set_user_attr("fail_reason", f"{type(e).__name__}: {str(e).splitlines()[0]}")
                if isinstance(e, DiskSpaceError):
                    trial.set_user_attr(RESUMABLE_ATTR, True)  # keep its checkpoints: free space, then resume
                    disk_errors.append(e)
                    trial.study.stop()
                raise

        def on_trial_end(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            study_checkpoints.release_finished()
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            best = max((t.value for t in done if t.value is not None), default=float("nan"))
            tracker.log_metrics(study_run, {"best_so_far": best, "completed_trials": len(done)}, step=trial.number + 1)

        if saved:
            requeue_interrupted_trials(study, tracker)
        run_trials(study, config, train_trial, on_trial_end, n_trials=config.hpo.n_trials - counted_trials(study))
        if disk_errors:
            tracker.end_run(study_run, "FAILED")
            raise disk_errors[0]
        report = evaluate_best_trial(study, study_id, config, corpus)
        path = write_report(study_dir / STUDY_REPORT, report, "study_report")
        tracker.log_metrics(study_run, report["test_metrics"], step=0)
        tracker.log_artifact(study_run, path)
        tracker.end_run(study_run)
        log.info("study report: %s", path)
    return StudyResult(study_id, study_dir, path, report)


def requeue_interrupted_trials(study: optuna.Study, tracker: Tracker) -> None:
    """Trials left RUNNING by a dead process, and trials stopped by a full disk, go back into the queue
    with their parameters: from their newest valid checkpoint in the same MLflow run when they have one,
    from scratch in a new run otherwise. The originals are marked re-queued and no longer count."""
    requeued = set(study.user_attrs.get(REQUEUED_ATTR, []))
    for trial in study.get_trials(deepcopy=False):
        stale = trial.state == optuna.trial.TrialState.RUNNING
        disk_full = trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs.get(RESUMABLE_ATTR)
        if trial.number in requeued or not (stale or disk_full):
            continue
        trial_dir = Path(trial.user_attrs.get("trial_dir", "."))
        checkpoints = trial_dir / "checkpoints"
        has_checkpoint = checkpoints.is_dir() and bool(newest_resumable_first(CheckpointStore(checkpoints).list()))
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if stale:
            handle = optuna.trial.Trial(study, trial._trial_id)
            handle.set_user_attr("fail_reason", "interrupted (its process died); re-queued")
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        requeued.add(trial.number)
        study.set_user_attr(REQUEUED_ATTR, sorted(requeued))
        if has_checkpoint and run_id:
            study.enqueue_trial(trial.params, user_attrs={RESUME_OF_ATTR: trial.number})
            log.warning(
                "trial %d was interrupted; it resumes from its newest checkpoint in %s", trial.number, trial_dir
            )
        else:
            if run_id:
                tracker.end_run(run_id, "KILLED")
            study.enqueue_trial(trial.params)
            log.warning("trial %d was interrupted before its first checkpoint; it restarts from epoch 0", trial.number)


def rollback_trial(study_dir: Path, trial_id: str, epoch: int, overrides: dict[str, Any]) -> str:
    """Roll an interrupted or failed trial back to its retained resumable checkpoint of ``epoch``: newer
    checkpoints are deleted, ``overrides`` (e.g. a lower ``train.lr_head``) go into the trial's config, and
    the trial is re-queued to continue from that epoch in a new MLflow run (tagged ``rolled_back_from``)
    at the next ``resume``. Returns a summary line."""
    saved = json.loads((study_dir / STUDY_FILE).read_text(encoding="utf-8"))
    with study_lock(study_dir):
        study = create_study(config_from_dict(saved["config"]), saved["study_name"], saved["storage"])
        requeued = set(study.user_attrs.get(REQUEUED_ATTR, []))
        matches = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("trial_id") == trial_id]
        if not matches:
            raise StudyError(f"no trial {trial_id} in study {saved['study_id']}")
        trial = matches[-1]
        interrupted = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL)
        if trial.state not in interrupted or trial.number in requeued:
            raise StudyError(
                f"trial {trial_id} is {trial.state.name}: only an interrupted or failed trial can be rolled back "
                "(stop the study first; a completed trial is final)"
            )
        trial_dir = Path(trial.user_attrs["trial_dir"])
        store = CheckpointStore(trial_dir / "checkpoints")
        resumable = [c for c in store.list() if c.resumable]
        target = [c for c in resumable if c.epoch == epoch]
        if not target:
            raise StudyError(
                f"trial {trial_id} has no resumable checkpoint of epoch {epoch} (retained: "
                f"{[c.epoch for c in resumable] or 'none'}). Earlier resume points exist only when the study runs "
                "with e.g. retention_policy.keep_last_n=3."
            )
        verify(target[0])
        config_path = trial_dir / "config.yaml"
        trial_config = config_from_dict(yaml.safe_load(config_path.read_text(encoding="utf-8")))
        if overrides:
            trial_config = apply_overrides(trial_config, overrides)
            config_path.write_text(yaml.safe_dump(dataclasses.asdict(trial_config), sort_keys=False), encoding="utf-8")
        for checkpoint in store.list():
            if checkpoint.epoch > epoch:
                store.delete(checkpoint)
        if trial.state == optuna.trial.TrialState.RUNNING:
            optuna.trial.Trial(study, trial._trial_id).set_user_attr("fail_reason", f"rolled back to epoch {epoch}")
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.set_user_attr(REQUEUED_ATTR, sorted(requeued | {trial.number}))
        study.enqueue_trial(trial.params, user_attrs={RESUME_OF_ATTR: trial.number, ROLLBACK_ATTR: epoch})
        if RUN_ID_ATTR in trial.user_attrs:  # its metrics stay as they were; the trial continues in a new run
            open_tracker(trial_config).end_run(trial.user_attrs[RUN_ID_ATTR], "KILLED")
    changed = f" with {overrides}" if overrides else ""
    return f"trial {trial_id} rolled back to epoch {epoch}{changed}; `redsm5-hpo resume` continues it from there"


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards ``hpo.n_trials``: finished ones, except those re-queued."""
    requeued = set(study.user_attrs.get(REQUEUED_ATTR, []))
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state in finished and t.number not in requeued)


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
    evaluations = evaluate_checkpoints(trial_config, trial_dir, trial_report["checkpoint_references"], corpus, "test")
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
            "failed": states.count(optuna.trial.TrialState.FAIL) - len(study.user_attrs.get(REQUEUED_ATTR, [])),
        },
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "code_version": __version__,
    }


def evaluate_checkpoints(
    config: Config, trial_dir: Path, references: list[str], corpus: Corpus, split: str
) -> list[dict[str, Any]]:
    """Score each referenced checkpoint; one that fails verification is replaced by the next valid
    checkpoint of the trial (best first), with a WARNING naming both."""
    available = best_first(CheckpointStore(trial_dir / "checkpoints").list())
    referenced = [c for c in available if str(c.path) in references]
    evaluations: list[dict[str, Any]] = []
    used: set[Path] = set()
    for checkpoint in referenced or available[:1]:
        candidates = [checkpoint, *(c for c in available if c.path != checkpoint.path)]
        model, tokenizer = build_model(config)
        loaded = load_first_valid(candidates, model, model.architecture_signature())
        if loaded.path in used:
            continue
        used.add(loaded.path)
        dataset = MultiLabelDataset(corpus.splits[split], tokenizer, config.data.max_length)
        predictions = predict(model, dataset, config.train.batch_size, config.train.evidence_loss_weight)
        metrics = score(predictions, dataset, "test" if split == "test" else "val")
        evaluations.append({"checkpoint": str(loaded.path), "epoch": loaded.epoch, "test_metrics": metrics})
    if not evaluations:
        raise StudyError(f"no checkpoint left in {trial_dir / 'checkpoints'} to evaluate")
    return evaluations


def evaluate_checkpoint(config: Config, checkpoint: StoredCheckpoint, corpus: Corpus, split: str) -> dict[str, float]:
    """Load one verified checkpoint into a model built from ``config`` and score ``split``."""
    (evaluation,) = evaluate_checkpoints(config, checkpoint.path.parent.parent, [str(checkpoint.path)], corpus, split)
    return dict(evaluation["test_metrics"])
