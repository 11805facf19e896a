"""The HPO study: new or resumed, sequential trials, then one test evaluation of the best trial."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from redsm5_hpo import __version__
from redsm5_hpo.atomic_files import write_json_atomic
from redsm5_hpo.checkpoints.disk import (
    DiskSpaceError,
)
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.loading import config_from_dict
from redsm5_hpo.config.resume import override_keys, resume_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.evaluation.metrics import best_of
from redsm5_hpo.evaluation.plots import write_study_plots
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.faults import fault_point
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.lock import study_lock
from redsm5_hpo.hpo.progress import Progress, study_progress
from redsm5_hpo.hpo.retention import DIVERGED_ATTR, RESUMABLE_ATTR, StudyCheckpoints
from redsm5_hpo.hpo.study import (
    TrialSpec,
    best_trial,
    create_study,
    default_storage,
    enqueue_slots,
    failure_reason,
    is_stale,
    run_trials,
    study_direction,
    uncounted,
)
from redsm5_hpo.hub_token import TokenGate, check_from_config
from redsm5_hpo.interrupts import StopRequested, raise_if_requested
from redsm5_hpo.pipeline.evaluate import evaluate_best_trial, study_run_metrics
from redsm5_hpo.pipeline.parts import (
    LIFECYCLE_ATTR,
    RESUME_OF_ATTR,
    ROLLBACK_ATTR,
    RUN_ID_ATTR,
    STUDY_FILE,
    STUDY_REPORT,
    TRIAL_REPORT,
    dataset_tags,
    experiments_root,
    open_monitor,
    open_tracker,
)
from redsm5_hpo.pipeline.recovery import requeue_interrupted_trials
from redsm5_hpo.pipeline.trial import TrialContext, run_trial
from redsm5_hpo.tracking.base import Tracker
from redsm5_hpo.tracking.logs import json_log_file
from redsm5_hpo.training.hooks import TrialPruned
from redsm5_hpo.training.loop import NonFiniteLossError

log = logging.getLogger(__name__)

REPORT_CLAIM = ".report_claim"


@dataclass(frozen=True)
class StudyResult:
    study_id: str
    study_dir: Path
    report_path: Path
    report: dict[str, Any] | None
    """None for a worker that did not write the report (another worker finishes the study)."""


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


def run_study(
    config: Config,
    progress: bool = True,
    resume_dir: Path | None = None,
    device: str | None = None,
    overrides: Sequence[str] = (),
) -> StudyResult:
    """``redsm5-hpo tune`` / ``resume``: the study, then one test evaluation of the best trial.

    A study directory that already holds ``study.json`` (``resume_dir``, or ``tune`` with the
    ``hpo.study_name`` of an existing study) is continued with its saved configuration: finished trials
    stay as they are, interrupted trials resume from their newest valid checkpoint in the same MLflow run
    (or restart cleanly if they never saved one), and the remaining trials run. ``device`` replaces the
    saved ``train.device`` of the study and its trials (resuming on another machine). ``overrides`` are the
    keys the user set (``config`` holds their values): a resumed study takes those that do not change what
    its trials compute (``config.resume``), keeps them in ``study.json``, and refuses the others."""
    if not config.train.save_checkpoints:
        raise ConfigError(["train.save_checkpoints: a study needs checkpoints to evaluate its best trial on test"])
    if (
        resume_dir is None
        and config.hpo.study_name
        and (experiments_root(config) / config.hpo.study_name / STUDY_FILE).is_file()
    ):
        resume_dir = experiments_root(config) / config.hpo.study_name
    saved = json.loads((resume_dir / STUDY_FILE).read_text(encoding="utf-8")) if resume_dir else None
    changed: dict[str, Any] = {}
    if saved:
        config, changed = resume_config(config_from_dict(saved["config"]), config, override_keys(overrides))
    runtime = resolve_runtime(config.train, device)  # a missing device fails before any work
    study_name = saved["study_name"] if saved else config.hpo.study_name or f"study_{uuid.uuid4().hex}"
    study_id = study_name.removeprefix("study_")
    study_dir = experiments_root(config) / study_name
    study_dir.mkdir(parents=True, exist_ok=True)
    storage = saved["storage"] if saved else config.hpo.storage or default_storage(study_dir)
    shared = is_shared(storage)  # a database server: several workers may run this study at once
    log_name = f"events.{socket.gethostname()}-{os.getpid()}.jsonl" if shared else "events.jsonl"
    with (
        contextlib.nullcontext() if shared else study_lock(study_dir),
        json_log_file(study_dir / "logs" / log_name, config.logs),
        open_monitor(config) as monitor,
        open_tracker(config) as tracker,
    ):
        corpus = load_corpus(config.data, config.seed)
        splits = {k: len(v) for k, v in corpus.splits.items()}
        log.info("study %s: data %s@%s, splits %s", study_id, corpus.source, corpus.revision, splits)
        if saved:
            study_run = str(saved["mlflow_run_id"])
            tracker.reopen_run(study_run)
            tracker.set_tags(study_run, runtime.describe())  # the machine resuming it may differ
            log.info("resuming study %s", study_id)
            if changed:
                log.info("the resumed study now runs with %s", ", ".join(f"{k}={v}" for k, v in changed.items()))
                write_json_atomic(study_dir / STUDY_FILE, {**saved, "config": dataclasses.asdict(config)})
            fault_point("resume_setup")
        else:
            tags = {"study_id": study_id, "seed": str(config.seed), "code_version": __version__, **dataset_tags(corpus)}
            study_run = tracker.start_run(study_name, tags | runtime.describe())
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
        enqueue_slots(study, config.hpo.n_trials)
        study_checkpoints = StudyCheckpoints(study, config.retention_policy)
        token_gate = TokenGate(check_from_config(config), config.hub.recheck_interval_s)
        disk_errors: list[DiskSpaceError] = []

        def train_trial(spec: TrialSpec, trial: optuna.Trial) -> float:
            origin = trial.user_attrs.get(RESUME_OF_ATTR)
            previous = study.trials[origin].user_attrs if origin is not None else {}
            trial_id = previous.get("trial_id") or uuid.uuid4().hex
            trial_dir = experiments_root(config) / f"trial_{trial_id}"
            trial.set_user_attr(LIFECYCLE_ATTR, "queued")
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
            progress_now = _progress(study, config.hpo.n_trials, starting=True)
            if origin is not None:
                log.info("resuming interrupted trial %d (re-queued as trial %d): %s", origin, spec.number, spec.params)
            else:
                log.info("trial %d/%d: %s", progress_now.trial, progress_now.total, spec.params)
            _report_progress(tracker, study_run, progress_now)
            extra_tags |= progress_now.as_tags()
            token_gate.wait_until_valid(f"trial {progress_now.trial}")
            context = TrialContext(
                tracker,
                monitor,
                study_checkpoints,
                study_id,
                spec,
                study_run,
                progress,
                on_run_started=lambda run_id: trial.set_user_attr(RUN_ID_ATTR, run_id),
                token_gate=token_gate,
                should_prune=lambda epoch, value: _report_epoch(trial, epoch, value),
                on_lifecycle=lambda stage: trial.set_user_attr(LIFECYCLE_ATTR, stage),
                device_override=device,
            )
            try:
                continuing = origin is not None
                value = run_trial(
                    trial_config, corpus, context, trial_id, resume_run_id, continuing, extra_tags
                ).best_value
                trial.set_user_attr(LIFECYCLE_ATTR, "completed")
                return value
            except StopRequested as e:
                trial.set_user_attr(LIFECYCLE_ATTR, "interrupted")
                trial.set_user_attr("fail_reason", f"interrupted: {e}; resumable")
                trial.set_user_attr(RESUMABLE_ATTR, True)  # `resume` continues it from its newest checkpoint
                raise
            except TrialPruned as e:
                trial.set_user_attr(LIFECYCLE_ATTR, "pruned")
                trial.set_user_attr("prune_reason", f"{config.hpo.pruner} pruner: {e}")
                raise optuna.TrialPruned(str(e)) from None
            except Exception as e:
                trial.set_user_attr(LIFECYCLE_ATTR, "failed")
                trial.set_user_attr("fail_reason", failure_reason(e))
                if isinstance(e, NonFiniteLossError):
                    trial.set_user_attr(DIVERGED_ATTR, True)  # its last resume point stays for a rollback
                if isinstance(e, DiskSpaceError):
                    trial.set_user_attr(RESUMABLE_ATTR, True)  # keep its checkpoints: free space, then resume
                    disk_errors.append(e)  # the study stops after this trial (run_trials' stop)
                raise

        def on_trial_end(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            study_checkpoints.release_finished()
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            best = best_of((t.value for t in done if t.value is not None), study_direction(study))
            best = float("nan") if best is None else best
            tracker.log_metrics(study_run, {"best_so_far": best, "completed_trials": len(done)}, step=trial.number + 1)
            _report_progress(tracker, study_run, _progress(study, config.hpo.n_trials, starting=False))

        if saved:
            now = time.time()
            requeue_interrupted_trials(
                study, tracker, lambda t: not shared or is_stale(t, now, config.hpo.stale_after_s)
            )
        try:
            ran = run_trials(
                study,
                config,
                train_trial,
                on_trial_end,
                config.hpo.heartbeat_interval_s,
                stop=lambda: bool(disk_errors),
            )
            raise_if_requested()  # not even the test evaluation once a stop was asked for
        except StopRequested as e:
            log.warning(
                "%s: study %s stopped; the interrupted trial resumes from its newest checkpoint with "
                "`redsm5-hpo resume --study %s`",
                e,
                study_id,
                study_id,
            )
            raise
        if disk_errors:
            tracker.end_run(study_run, "FAILED")
            raise disk_errors[0]
        if shared and not _claim_report(study, study_dir):
            log.info("this worker ran %d trial(s); the worker that finishes the last trial writes the report", ran)
            return StudyResult(study_id, study_dir, study_dir / STUDY_REPORT, None)
        report = evaluate_best_trial(study, study_id, config, corpus, device)
        path = write_report(study_dir / STUDY_REPORT, report, "study_report")
        tracker.log_metrics(study_run, study_run_metrics(report), step=0)
        for artifact in [path, *write_plots(study, study_dir, config)]:
            tracker.log_artifact(study_run, artifact)
        tracker.end_run(study_run)
        log.info("study report: %s", path)
    return StudyResult(study_id, study_dir, path, report)


def _progress(study: optuna.Study, total: int, starting: bool) -> Progress:
    """Progress over the trials that count (finished, not re-queued); ``starting``: the next one begins."""
    requeued = uncounted(study)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.number not in requeued]
    durations = [t.duration.total_seconds() for t in finished if t.duration is not None]
    values = [t.value for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    return study_progress(len(finished) + int(starting), total, durations, values, study_direction(study))


def _report_progress(tracker: Tracker, study_run: str, progress: Progress) -> None:
    """On stdout and in the JSON log (``progress`` field), and as tags of the study's run."""
    log.info("%s", progress.describe(), extra={"progress": progress.as_dict()})
    tracker.set_tags(study_run, progress.as_tags())


def _report_epoch(trial: optuna.Trial, epoch: int, value: float) -> bool:
    """Feed the pruner (and the intermediate-values plot); True when the trial should stop."""
    trial.report(value, epoch)
    return trial.should_prune()


def write_plots(study: optuna.Study, study_dir: Path, config: Config) -> list[Path]:
    """The study's PNG plots under ``study_<id>/plots/``."""
    best = best_trial(study)
    history: list[dict[str, float]] = []
    if best is not None:
        report_path = Path(best.user_attrs["trial_dir"]) / TRIAL_REPORT
        if report_path.is_file():
            history = json.loads(report_path.read_text(encoding="utf-8"))["history"]
    return write_study_plots(study, study_dir / "plots", history, config.train.optimization_metric)


def is_shared(storage: str) -> bool:
    """Optuna storage on a database server (PostgreSQL, MySQL): workers on several machines can share it.
    A SQLite file is one process's (the study lock enforces it)."""
    return not storage.startswith("sqlite")


def _claim_report(study: optuna.Study, study_dir: Path) -> bool:
    """True for exactly one worker, once no trial is waiting or running: it writes the study report.
    The claim is a file created with O_EXCL in the shared study directory."""
    live = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    if study.get_trials(deepcopy=False, states=live):
        return False
    try:
        fd = os.open(study_dir / REPORT_CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
    os.close(fd)
    return True
