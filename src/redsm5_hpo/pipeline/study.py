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

from redsm5_hpo import __version__
from redsm5_hpo.checkpoints.cache import evict
from redsm5_hpo.checkpoints.disk import (
    DiskSpaceError,
)
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.resume import override_keys, resume_config
from redsm5_hpo.config.schema import MB, Config
from redsm5_hpo.config.search_space import warm_start_params
from redsm5_hpo.config.validation import tune_problems
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.device_errors import DeviceFailed
from redsm5_hpo.devices import Runtime, resolve_runtime
from redsm5_hpo.errors import FILES_ONLY
from redsm5_hpo.evaluation.metrics import metric_direction, oriented
from redsm5_hpo.evaluation.plots import write_study_plots
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.faults import fault_point
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.lock import study_lock
from redsm5_hpo.hpo.retention import StudyCheckpoints
from redsm5_hpo.hpo.samplers import sampler_warning
from redsm5_hpo.hpo.storage import default_storage, fail_stale_trials, is_shared, unnamed_shared_study
from redsm5_hpo.hpo.study import (
    best_trial,
    create_study,
    enqueue_slots,
    record_answer,
    reopen_skipped,
)
from redsm5_hpo.interrupts import StopRequested, raise_if_requested
from redsm5_hpo.layout import STUDY_PREFIX, StudyDir, TrialDir, experiments_root, study_dirs
from redsm5_hpo.pipeline.evaluate import evaluate_best_trial, report_is_current, study_run_metrics, with_test_history
from redsm5_hpo.pipeline.mirroring import publish, pull
from redsm5_hpo.pipeline.parts import dataset_input, dataset_tags, open_monitor, open_tracker, trial_stores
from redsm5_hpo.pipeline.record import StudyRecord
from redsm5_hpo.pipeline.recovery import requeue_interrupted_trials
from redsm5_hpo.pipeline.work import Worker, open_study_storage
from redsm5_hpo.pipeline.workers import run_workers, worker_device
from redsm5_hpo.remote import check_bucket, open_bucket
from redsm5_hpo.tracking.base import Tracker
from redsm5_hpo.tracking.logs import json_log_file
from redsm5_hpo.tracking.sanitize import MASK

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


def find_study_dir(config: Config, study: str | None) -> Path:
    """``experiments/study_<id>`` for ``study`` (an id or a directory name), else the newest study."""
    root = experiments_root(config)
    bucket = open_bucket(config.remote)
    if bucket is not None:  # a study another machine ran: its files from the bucket (those missing here)
        for name in [study, f"{STUDY_PREFIX}{study}"] if study else [None]:
            if pull(bucket, root, name):
                break
    if study:
        for candidate in (StudyDir.of(root, study), StudyDir.of(root, f"{STUDY_PREFIX}{study}")):
            if candidate.record_path.is_file():
                return candidate.path
        looked = StudyDir.of(root, study).record_path.name
        raise StudyError(f"no study {study!r} under {root} (looked for {looked}); list them with `ls {root}`")
    studies = sorted(
        (d for d in study_dirs(root) if d.record_path.is_file()), key=lambda d: d.record_path.stat().st_mtime
    )
    if not studies:
        raise StudyError(f"no study under {root}; start one with `redsm5-hpo tune experiments_dir={root}`")
    return studies[-1].path


def _with_storage(saved: StudyRecord, storage: str | None, study_dir: Path) -> StudyRecord:
    """The record of a study joined from the bucket, whose storage URL has its password masked there: the
    URL this machine was given, written back to its local record (mode 0600, which its workers read)."""
    if not storage or MASK in storage:
        raise ConfigError(
            [
                f"hpo.storage: the study's storage URL came from the bucket with its password masked "
                f"({saved.storage}); pass hpo.storage=<url> as the machine that created the study did"
            ]
        )
    raw = {**saved.config, "hpo": {**saved.config.get("hpo", {}), "storage": storage}}
    record = dataclasses.replace(saved, storage=storage, config=raw)
    record.write(study_dir)
    return record


@dataclass(frozen=True)
class StudyPlan:
    """What a study run works from, settled before any work: its configuration, identity and storage."""

    config: Config
    saved: StudyRecord | None
    """The study's record when it is resumed (or joined); None for a new study."""
    changed: dict[str, Any]
    """Settings a resume changed (``config.resume``), saved back into the record."""
    study_name: str
    study_dir: Path
    storage_url: str
    runtime: Runtime
    device: str | None
    keys: tuple[str, ...] = ()
    """The keys the user set on the command line (a resume passing ``hpo.timeout_s`` starts a new budget)."""
    warm: tuple[list[dict[str, Any]], str] = ([], "")
    """A new study's ``hpo.warm_start`` parameter sets and the report they came from (checked before any work)."""

    @property
    def study_id(self) -> str:
        return self.study_name.removeprefix(STUDY_PREFIX)

    @property
    def shared(self) -> bool:
        """A database server: several machines may run this study at once (no study lock)."""
        return is_shared(self.storage_url)

    @property
    def files(self) -> StudyDir:
        return StudyDir(self.study_dir)

    @property
    def log_name(self) -> str:
        return f"events.{socket.gethostname()}-{os.getpid()}.jsonl" if self.shared else "events.jsonl"


def plan_study(config: Config, resume_dir: Path | None, device: str | None, overrides: Sequence[str]) -> StudyPlan:
    """New or resumed: a directory holding ``study.json`` (``resume_dir``, or the ``hpo.study_name`` of an
    existing study) is continued with its saved configuration plus the resume-safe ``overrides``."""
    root = experiments_root(config)
    bucket = open_bucket(config.remote)
    named = config.hpo.study_name
    if resume_dir is None and named and bucket and not StudyDir.of(root, named).record_path.is_file():
        pull(bucket, root, named)  # another machine created it: join it (its files come from the bucket)
    if resume_dir is None and config.hpo.study_name and StudyDir.of(root, config.hpo.study_name).record_path.is_file():
        resume_dir = root / config.hpo.study_name
    saved = StudyRecord.read(resume_dir) if resume_dir else None
    if saved and resume_dir and MASK in saved.storage:  # its record came from the bucket, password masked
        saved = _with_storage(saved, config.hpo.storage, resume_dir)
    problems = tune_problems(config)
    if saved is None and (unnamed := unnamed_shared_study(config.hpo.storage, config.hpo.study_name)):
        problems.append(unnamed)
    if problems:
        raise ConfigError(problems)
    changed: dict[str, Any] = {}
    if saved:
        config, changed = resume_config(saved.resolved_config(), config, override_keys(overrides))
        config = dataclasses.replace(config, experiments_dir=str(root))  # where it is now (moved, another machine)
    runtime = resolve_runtime(config.train, device)  # a missing device fails before any work
    study_name = saved.study_name if saved else config.hpo.study_name or f"{STUDY_PREFIX}{uuid.uuid4().hex}"
    study_dir = StudyDir.of(root, study_name).path
    storage_url = saved.storage if saved else config.hpo.storage or default_storage(study_dir, config.hpo.n_workers)
    if saved and config.hpo.n_trials < saved.resolved_config().hpo.n_trials:
        raise ConfigError(
            [
                f"hpo.n_trials: a resumed study can run more trials, not fewer (it was started with "
                f"{saved.resolved_config().hpo.n_trials})"
            ]
        )
    keys = tuple(override_keys(overrides))
    warm = warm_start_sets(config) if saved is None else ([], "")  # an unknown study fails before any work
    return StudyPlan(config, saved, changed, study_name, study_dir, storage_url, runtime, device, keys, warm)


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
            session.setup()
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
    """One process's run of a study: ``setup`` (data, MLflow run, Optuna study), ``run`` (the trials, in
    this process or in worker processes), ``finish`` (the test evaluation and the report)."""

    def __init__(self, plan: StudyPlan, tracker: Tracker, monitor: DiskMonitor, progress: bool) -> None:
        self.plan, self.config, self.progress = plan, plan.config, progress
        self.tracker, self.monitor = tracker, monitor

    def setup(self) -> None:
        self._setup_bucket()
        self._setup_data()
        self._setup_run()
        publish(self.stores.bucket, self.stores.root, self.plan.study_dir)
        self._setup_optuna()

    def _setup_bucket(self) -> None:
        """With ``remote.uri``: a probe object written, read and deleted before any work (exit 2 with the fix
        when the bucket cannot be used)."""
        self.stores = trial_stores(self.config, self.plan.study_dir.parent)
        if self.stores.bucket is not None:
            check_bucket(self.stores.bucket)
            log.info("study files and checkpoints go to %s", self.stores.bucket.url())

    def _setup_data(self) -> None:
        self.corpus = load_corpus(self.config.data, self.config.seed)
        splits = {k: len(v) for k, v in self.corpus.splits.items()}
        log.info(
            "study %s: data %s@%s, splits %s", self.plan.study_id, self.corpus.source, self.corpus.revision, splits
        )

    def _setup_run(self) -> None:
        """The study's MLflow run: reopened on a resume, else started, and ``study.json`` written."""
        plan, tracker, saved = self.plan, self.tracker, self.plan.saved
        if saved:
            self.study_run = saved.mlflow_run_id
            tracker.reopen_run(self.study_run)
            tracker.set_tags(self.study_run, plan.runtime.describe())  # the machine resuming it may differ
            log.info("resuming study %s", plan.study_id)
            if plan.changed:
                log.info("the resumed study now runs with %s", ", ".join(f"{k}={v}" for k, v in plan.changed.items()))
                saved.with_config(self.config).write(plan.study_dir)
            fault_point("resume_setup")
            return
        tags = {"study_id": plan.study_id, "seed": str(self.config.seed), "code_version": __version__}
        self.study_run = tracker.start_run(plan.study_name, tags | dataset_tags(self.corpus) | plan.runtime.describe())
        tracker.log_params(self.study_run, dataclasses.asdict(self.config))
        tracker.log_dataset(self.study_run, dataset_input(self.corpus))
        record = StudyRecord(plan.study_id, plan.study_name, plan.storage_url, self.study_run, {})
        record.with_config(self.config).write(plan.study_dir)  # the config with its secrets

    def _setup_optuna(self) -> None:
        self.storage = open_study_storage(self.plan.storage_url, self.config, self.tracker)
        self.study = create_study(self.config, self.plan.study_name, self.storage)
        if self.plan.saved:
            more = extends(self.plan)
            reopened = reopen_skipped(self.study, self.config, "hpo.timeout_s" in self.plan.keys, more)
            if reopened:
                log.info("%d trial slot(s) the stopped study had closed are queued again", reopened)
        else:
            if warning := sampler_warning(self.config.hpo.sampler, self.config.hpo.search_space):
                log.warning("%s", warning)
        enqueue_slots(self.study, self.config, *self.plan.warm)
        if self.plan.saved:  # with the study lock held, every RUNNING trial's process is dead
            fail_stale_trials(self.study)  # a database server: Optuna's heartbeats tell which ones are
            stores = trial_stores(self.config)
            requeue_interrupted_trials(self.study, self.tracker, stores, lambda t: not self.plan.shared)

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
        plan, config = self.plan, self.config
        worker = Worker(config, plan.study_id, self.study_run, self.corpus, self.tracker, self.monitor)
        worker.progress, worker.device, worker.study_dir = self.progress, device, plan.study_dir
        return worker.run(self.study, self.storage), worker.disk_errors

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


def warm_start_sets(config: Config) -> tuple[list[dict[str, Any]], str]:
    """``hpo.warm_start``: the earlier study's best distinct parameter sets for this search space (none
    without it), and the report they came from. A study id is looked up under ``experiments_dir``."""
    source = config.hpo.warm_start
    if not source:
        return [], ""
    root = experiments_root(config)
    found = [
        p for p in (Path(source), *(StudyDir.of(root, n).report_path for n in (source, f"{STUDY_PREFIX}{source}")))
    ]
    path = next((p for p in found if p.is_file()), None)
    if path is None:
        raise StudyError(
            f"hpo.warm_start={source}: no study report there or under {root} (looked for "
            f"{StudyDir.of(root, f'{STUDY_PREFIX}{source}').report_path}); name a finished study's id or its "
            "study_report.json"
        )
    report = json.loads(path.read_text(encoding="utf-8"))
    direction = metric_direction(report["optimization_metric"])
    candidates = [
        (oriented(float(h["value"]), direction), dict(h.get("params") or {}))
        for h in report["summary"]["best_value_history"]
        if h["state"] == "complete" and h["value"] is not None
    ]
    sets = warm_start_params(candidates, config.hpo.search_space, config.hpo.warm_start_top_k)
    log.info("warm start from %s: its %d best parameter set(s) run first: %s", path, len(sets), sets)
    return sets, str(path)


STOPPING_KEYS = ("hpo.timeout_s", "hpo.patience_trials", "hpo.min_improvement")


def extends(plan: StudyPlan) -> bool:
    """The resume gives the study more search trials (``resume hpo.n_trials=N``)."""
    return plan.saved is not None and plan.config.hpo.n_trials > plan.saved.resolved_config().hpo.n_trials


def require_extensible(study: optuna.Study, plan: StudyPlan) -> None:
    """More search trials only before the confirmation was queued: trials searched after it would not be
    among the configurations it confirmed."""
    if study.user_attrs.get(attrs.CONFIRM_QUEUED) is not None:
        raise StudyError(
            f"study {plan.study_id} has confirmed its best configurations over seeds: more search trials would "
            f"come after them. Start a new study from its best ones: "
            f"`redsm5-hpo tune hpo.warm_start={plan.study_id} experiments_dir={plan.study_dir.parent}`"
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
