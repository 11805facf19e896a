"""The HPO study: new or resumed, sequential trials, then one test evaluation of the best trial."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from redsm5_hpo import __version__
from redsm5_hpo.checkpoints.cache import evict
from redsm5_hpo.checkpoints.disk import (
    DiskSpaceError,
)
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.checkpoints.store import TrialStores
from redsm5_hpo.config.schema import MB, Config
from redsm5_hpo.device_errors import DeviceFailed
from redsm5_hpo.errors import FILES_ONLY
from redsm5_hpo.evaluation.plots import write_study_plots
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.faults import fault_point
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.lock import study_lock
from redsm5_hpo.hpo.retention import StudyCheckpoints
from redsm5_hpo.hpo.samplers import sampler_warning
from redsm5_hpo.hpo.slots import enqueue_slots, reopen_skipped
from redsm5_hpo.hpo.storage import fail_stale_trials
from redsm5_hpo.hpo.study import create_study, record_answer
from redsm5_hpo.hpo.trials import best_trial
from redsm5_hpo.interrupts import StopRequested, raise_if_requested
from redsm5_hpo.layout import StudyDir, TrialDir
from redsm5_hpo.pipeline.builders import dataset_input, dataset_tags
from redsm5_hpo.pipeline.mirroring import publish
from redsm5_hpo.pipeline.opening import OpenStudy, open_study, study_corpus
from redsm5_hpo.pipeline.plan import STOPPING_KEYS, StudyPlan, extends, plan_study, require_extensible
from redsm5_hpo.pipeline.recovery import requeue_interrupted_trials
from redsm5_hpo.pipeline.scoring import evaluate_best_trial, report_is_current, study_run_metrics, with_test_history
from redsm5_hpo.pipeline.services import open_monitor, open_tracker, trial_stores
from redsm5_hpo.pipeline.study_record import StudyRecord
from redsm5_hpo.pipeline.worker import Worker
from redsm5_hpo.pipeline.worker_pool import run_workers, worker_device
from redsm5_hpo.remote import check_bucket
from redsm5_hpo.tracking.base import Tracker
from redsm5_hpo.tracking.logs import json_log_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyResult:
    study_id: str
    study_dir: Path
    report_path: Path
    report: dict[str, Any] | None
    """None for a worker that did not write the report (another worker finishes the study)."""
    finished_before: bool = False
    """The study had finished and its report was current: this run did nothing (``finished_report``)."""


def run_study(
    config: Config,
    progress: bool = True,
    resume_dir: Path | None = None,
    device: str | None = None,
    overrides: Sequence[str] = (),
) -> StudyResult:
    """``redsm5-hpo tune`` / ``resume``: the study, then one test evaluation of the best trial.

    A resumed study keeps its finished trials; interrupted trials resume from their newest valid
    checkpoint in the same MLflow run (or restart cleanly if they never saved one), and the remaining
    trials run. ``device`` replaces the saved ``train.device`` of the study and its trials (resuming on
    another machine). ``overrides`` are the keys the user set (``config`` holds their values): a resumed
    study takes those that do not change what its trials compute (``config.resume``), keeps them in
    ``study.json``, and refuses the others."""
    plan = plan_study(config, resume_dir, device, overrides)
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.nullcontext() if plan.shared else study_lock(plan.study_dir),
        json_log_file(plan.files.logs / plan.log_name, plan.config.logs),
    ):
        if plan.saved and (report := finished_report(plan)) is not None:
            log.info("study %s had finished and its report is current: nothing to do", plan.study_id)
            return StudyResult(plan.study_id, plan.study_dir, plan.files.report_path, report, True)
        if extends(plan):  # refused before the new count is written to study.json
            require_extensible(create_study(plan.config, plan.study_name, plan.storage_url), plan)
        with open_monitor(plan.config) as monitor, open_tracker(plan.config) as tracker:
            session = StudySession(plan, tracker, monitor, progress)
            ran = session.run()
            return session.finish(ran)


def previous_report(files: StudyDir) -> dict[str, Any] | None:
    """The study's report as it is on disk, if any (the one a new test evaluation replaces)."""
    try:
        return files.read_report()
    except (OSError, ValueError):
        return None


def finished_report(plan: StudyPlan) -> dict[str, Any] | None:
    """The report of a study that has finished, when it is current (``report_is_current``); None when the
    study has work left or its report is missing, unreadable or out of date. Opens neither the tracker nor
    the data: a resume of a finished study touches nothing."""
    try:
        report = plan.files.read_report()
    except (OSError, ValueError):
        return None
    study = create_study(plan.config, plan.study_name, plan.storage_url)
    if study.user_attrs.get(attrs.STOPPED) and set(plan.keys) & {*STOPPING_KEYS, "hpo.n_trials"}:
        return None  # a stopped study resumed with a new budget or patience may have trials to run
    return report if report_is_current(report, study, plan.config.hpo) else None


class StudySession:
    """One process's run of a study. Constructing it sets the study up (bucket, data, MLflow run, Optuna
    study: each ``_setup_*`` returns what it builds); ``run`` runs the trials, in this process or in worker
    processes; ``finish`` writes the test evaluation and the report."""

    def __init__(self, plan: StudyPlan, tracker: Tracker, monitor: DiskMonitor, progress: bool) -> None:
        self.plan, self.config, self.progress = plan, plan.config, progress
        self.tracker, self.monitor = tracker, monitor
        self.stores = self._setup_bucket()
        self.corpus = study_corpus(self.config, plan.study_id)
        record = self._setup_run()
        publish(self.stores.bucket, self.stores.root, plan.study_dir)
        self.opened = self._setup_optuna(record)
        self.study, self.study_run = self.opened.study, self.opened.study_run

    def _setup_bucket(self) -> TrialStores:
        """With ``remote.uri``: a probe object written, read and deleted before any work (exit 2 with the fix
        when the bucket cannot be used)."""
        stores = trial_stores(self.config, self.plan.study_dir.parent)
        if stores.bucket is not None:
            check_bucket(stores.bucket)
            log.info("study files and checkpoints go to %s", stores.bucket.url())
        return stores

    def _setup_run(self) -> StudyRecord:
        """The study's MLflow run: reopened on a resume, else started, and ``study.json`` written."""
        plan, tracker, saved = self.plan, self.tracker, self.plan.saved
        if saved:
            tracker.reopen_run(saved.mlflow_run_id)
            tracker.set_tags(saved.mlflow_run_id, plan.runtime.describe())  # the machine resuming it may differ
            log.info("resuming study %s", plan.study_id)
            if plan.changed:
                log.info("the resumed study now runs with %s", ", ".join(f"{k}={v}" for k, v in plan.changed.items()))
                saved.with_config(self.config).write(plan.study_dir)
            fault_point("resume_setup")
            return saved
        tags = {"study_id": plan.study_id, "seed": str(self.config.seed), "code_version": __version__}
        run = tracker.start_run(plan.study_name, tags | dataset_tags(self.corpus) | plan.runtime.describe())
        tracker.log_params(run, dataclasses.asdict(self.config))
        tracker.log_dataset(run, dataset_input(self.corpus))
        record = StudyRecord(plan.study_id, plan.study_name, plan.storage_url, run, {}).with_config(self.config)
        record.write(plan.study_dir)  # the config with its secrets
        return record

    def _setup_optuna(self, record: StudyRecord) -> OpenStudy:
        """The study on its storage, its trial slots queued (a resume: the slots a stopping rule closed and
        the interrupted trials, queued again)."""
        plan, config = self.plan, self.config
        opened = open_study(config, record, plan.study_dir, self.tracker)
        study = opened.study
        if plan.saved:
            reopened = reopen_skipped(study, config, "hpo.timeout_s" in plan.keys, extends(plan))
            if reopened:
                log.info("%d trial slot(s) the stopped study had closed are queued again", reopened)
        elif warning := sampler_warning(config.hpo.sampler, config.hpo.search_space):
            log.warning("%s", warning)
        enqueue_slots(study, config, *plan.warm)
        if plan.saved:  # with the study lock held, every RUNNING trial's process is dead
            fail_stale_trials(study)  # a database server: Optuna's heartbeats tell which ones are
            requeue_interrupted_trials(study, self.tracker, trial_stores(config), lambda t: not plan.shared)
        return opened

    def run(self) -> int:
        """The trials this machine runs; how many."""
        plan, config = self.plan, self.config
        disk_errors: list[DiskSpaceError] = []
        try:
            if config.hpo.n_workers > 1:
                stores = trial_stores(config)
                ran = run_workers(
                    self.study, plan.study_dir, config.hpo, plan.device, self.tracker, self.study_run, stores
                )
                _require_finished(self.study, plan.shared, plan.files)
            else:
                ran, disk_errors = self._run_here()
            raise_if_requested()  # not even the test evaluation once a stop was asked for
        except (StopRequested, DeviceFailed) as e:
            log.warning(
                "%s: study %s stopped; the interrupted trial resumes from its newest checkpoint with `%s`",
                e,
                plan.study_id,
                plan.files.command("resume"),
            )
            raise
        except DiskSpaceError:
            self.tracker.end_run(self.study_run, "FAILED")
            raise
        finally:  # the study's storage as it is now, for whichever machine continues it
            publish(self.stores.bucket, self.stores.root, plan.study_dir)
        if disk_errors:
            self.tracker.end_run(self.study_run, "FAILED")
            raise disk_errors[0]
        return ran

    def _run_here(self) -> tuple[int, list[DiskSpaceError]]:
        """One worker: this process trains the trials itself."""
        device = worker_device(self.config.hpo.devices, 0, self.plan.device)
        worker = Worker(self.opened, self.corpus, self.tracker, self.monitor, progress=self.progress, device=device)
        return worker.run(), worker.disk_errors

    def finish(self, ran: int) -> StudyResult:
        """The test evaluation of the best trial, the report, its metrics and plots in the study's run."""
        plan, tracker = self.plan, self.tracker
        if plan.shared and not claim_report(self.study, plan.study_dir):
            log.info("this worker ran %d trial(s); the worker that finishes the last trial writes the report", ran)
            return StudyResult(plan.study_id, plan.study_dir, plan.files.report_path, None)
        stores = self.stores
        report = evaluate_best_trial(self.study, plan.study_id, self.config, self.corpus, stores, plan.device)
        report = with_test_history(report, previous_report(plan.files))
        # one step per test evaluation: a study given more trials logs its new test metrics at the next step
        tracker.log_metrics(self.study_run, study_run_metrics(report), step=len(report["test_evaluations"]) - 1)
        for plot in write_plots(self.study, plan.study_dir, self.config):
            tracker.log_artifact(self.study_run, plot)
        fault_point("test_metrics_logged")
        # the report comes last: once it is written, a resume finds the study finished and does nothing, so
        # everything the tracker needs is journaled before (a restart before it logs the same keys again,
        # which the tracker keeps once)
        self._require_in_bucket(report)
        path = write_report(plan.files.report_path, report, "study_report")
        dataset = report["dataset"]
        record_answer(self.study, str(path), report["best_trial_id"], f"{dataset['source']}@{dataset['revision']}")
        if stores.bucket is not None:  # the copies the test evaluation downloaded
            publish(stores.bucket, stores.root, plan.study_dir)
            evict(stores.root, int(self.config.remote.cache_max_mb * MB))
        tracker.log_artifact(self.study_run, path)
        tracker.end_run(self.study_run)
        log.info("study report: %s", path, extra=FILES_ONLY)  # the console prints it with the answer
        return StudyResult(plan.study_id, plan.study_dir, path, report)

    def _require_in_bucket(self, report: dict[str, Any]) -> None:
        """With a bucket, the report is written only once the bucket holds the checkpoints it references
        (waiting up to ``remote.flush_timeout_s`` for it to come back); what a released trial left there
        during an outage goes first."""
        if self.stores.bucket is None or not report["checkpoint_references"]:
            return
        StudyCheckpoints(self.study, self.config.retention_policy, self.stores).release_finished()
        trial = self.stores.trial(Path(report["checkpoint_references"][0]).parent.parent)
        deadline = time.monotonic() + self.config.remote.flush_timeout_s
        while (waiting := self.stores.store(trial).sync()) and time.monotonic() < deadline:
            log.warning("waiting for the bucket to hold the best trial's checkpoints before the report")
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        if waiting:
            raise StudyError(
                f"{len(waiting)} checkpoint(s) of the best trial are not in {self.stores.bucket.url()} yet (it is "
                f"unreachable); they are safe on this disk. Run `{self.plan.files.command('resume')}` "
                "once the bucket is back: it uploads them and writes the report"
            )


def write_plots(study: optuna.Study, study_dir: Path, config: Config) -> list[Path]:
    """The study's PNG plots under ``study_<id>/plots/``."""
    best = best_trial(study)
    history: list[dict[str, float]] = []
    if best is not None:
        trial = TrialDir.located(Path(study_dir).parent, best.user_attrs[attrs.TRIAL_DIR])
        if trial.report_path.is_file():
            history = trial.read_report()["history"]
    return write_study_plots(study, StudyDir(study_dir).plots, history, config.train.optimization_metric)


def _require_finished(study: optuna.Study, shared: bool, files: StudyDir) -> None:
    """After this machine's workers exited: on a study of its own, no trial may be left to run."""
    live = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    left = study.get_trials(deepcopy=False, states=live)
    if left and not shared:
        raise StudyError(
            f"{len(left)} trial(s) of study {files.path.name} did not run (their workers died more often than they "
            f"were restarted; see logs/worker-*.log); continue with `{files.command('resume')}`"
        )


def claim_report(study: optuna.Study, study_dir: Path) -> bool:
    """True for exactly one worker, once no trial is waiting or running: it writes the study report.
    The claim is a file created with O_EXCL in the shared study directory, holding ``<host> <pid>``. A
    claimer that died on this machine before its report was written is succeeded through the same kind of
    file, ``.report_claim.<host>-<pid>`` (one successor per dead claimer), so a resume finishes the study."""
    live = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    if study.get_trials(deepcopy=False, states=live):
        return False
    claim = first = StudyDir(study_dir).report_claim_path
    while True:
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = claim.read_text(encoding="utf-8").split()
            if not died_here(holder):
                log.info("the report is claimed by %s (%s)", " ".join(holder) or "a worker starting now", claim)
                return False
            claim = first.with_name(f"{first.name}.{'-'.join(holder)}")
            continue
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        os.close(fd)
        return True


def died_here(holder: list[str]) -> bool:
    """A claim's ``[host, pid]`` names a process of this machine that is gone."""
    if len(holder) != 2 or holder[0] != socket.gethostname() or not holder[1].isdigit():
        return False
    try:
        os.kill(int(holder[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
