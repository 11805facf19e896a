"""The HPO study: new or resumed, sequential trials, then one test evaluation of the best trial."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from redsm5_hpo import __version__
from redsm5_hpo.atomic_files import PRIVATE, write_json_atomic
from redsm5_hpo.checkpoints.disk import (
    DiskSpaceError,
)
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.loading import config_from_dict
from redsm5_hpo.config.resume import override_keys, resume_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.config.validation import tune_problems
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.evaluation.plots import write_study_plots
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.faults import fault_point
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.lock import study_lock
from redsm5_hpo.hpo.storage import default_storage, fail_stale_trials, is_shared
from redsm5_hpo.hpo.study import best_trial, create_study, enqueue_slots
from redsm5_hpo.interrupts import StopRequested, raise_if_requested
from redsm5_hpo.pipeline.evaluate import evaluate_best_trial, study_run_metrics
from redsm5_hpo.pipeline.parts import (
    STUDY_FILE,
    STUDY_REPORT,
    TRIAL_REPORT,
    dataset_input,
    dataset_tags,
    experiments_root,
    open_monitor,
    open_tracker,
)
from redsm5_hpo.pipeline.recovery import requeue_interrupted_trials
from redsm5_hpo.pipeline.work import Worker, open_study_storage
from redsm5_hpo.pipeline.workers import run_workers, worker_device
from redsm5_hpo.tracking.logs import json_log_file

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
        raise StudyError(f"no study under {root}; start one with `redsm5-hpo tune`")
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
    if problems := tune_problems(config):
        raise ConfigError(problems)
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
    storage_url = saved["storage"] if saved else config.hpo.storage or default_storage(study_dir, config.hpo.n_workers)
    shared = is_shared(storage_url)  # a database server: several machines may run this study at once
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
                write_json_atomic(study_dir / STUDY_FILE, {**saved, "config": dataclasses.asdict(config)}, PRIVATE)
            fault_point("resume_setup")
        else:
            tags = {"study_id": study_id, "seed": str(config.seed), "code_version": __version__, **dataset_tags(corpus)}
            study_run = tracker.start_run(study_name, tags | runtime.describe())
            tracker.log_params(study_run, dataclasses.asdict(config))
            tracker.log_dataset(study_run, dataset_input(corpus))
            record = {
                "study_id": study_id,
                "study_name": study_name,
                "storage": storage_url,
                "mlflow_run_id": study_run,
                "config": dataclasses.asdict(config),
            }
            write_json_atomic(study_dir / STUDY_FILE, record, PRIVATE)  # the config with its secrets
        storage = open_study_storage(storage_url, config, tracker)
        study = create_study(config, study_name, storage)
        enqueue_slots(study, config.hpo.n_trials)
        if saved:  # with the study lock held, every RUNNING trial's process is dead
            fail_stale_trials(study)  # a database server: Optuna's heartbeats tell which ones are
            requeue_interrupted_trials(study, tracker, lambda t: not shared)
        device_here = worker_device(config.hpo.devices, 0, device)  # one worker: this process
        worker = Worker(config, study_id, study_run, corpus, tracker, monitor, progress, device_here)
        try:
            if config.hpo.n_workers > 1:
                ran = run_workers(study, study_dir, config.hpo, device, tracker, study_run)
                _require_finished(study, shared, study_id)
            else:
                ran = worker.run(study, storage)
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
        except DiskSpaceError:
            tracker.end_run(study_run, "FAILED")
            raise
        disk_errors = worker.disk_errors
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


def write_plots(study: optuna.Study, study_dir: Path, config: Config) -> list[Path]:
    """The study's PNG plots under ``study_<id>/plots/``."""
    best = best_trial(study)
    history: list[dict[str, float]] = []
    if best is not None:
        report_path = Path(best.user_attrs["trial_dir"]) / TRIAL_REPORT
        if report_path.is_file():
            history = json.loads(report_path.read_text(encoding="utf-8"))["history"]
    return write_study_plots(study, study_dir / "plots", history, config.train.optimization_metric)


def _require_finished(study: optuna.Study, shared: bool, study_id: str) -> None:
    """After this machine's workers exited: on a study of its own, no trial may be left to run."""
    live = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    left = study.get_trials(deepcopy=False, states=live)
    if left and not shared:
        raise StudyError(
            f"{len(left)} trial(s) of study {study_id} did not run (their workers died more often than they were "
            f"restarted; see logs/worker-*.log); continue with `redsm5-hpo resume --study {study_id}`"
        )


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
