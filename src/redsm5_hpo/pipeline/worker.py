"""One worker's share of a study: claim waiting trials one at a time and train them.

The study process runs this itself with one worker (``hpo.n_workers=1``); with several, each worker
process it starts (``redsm5-hpo worker``, ``work_on_study``) runs it on the same storage.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import uuid
from pathlib import Path

import optuna
from tqdm.auto import tqdm

from redsm5_hpo.checkpoints.disk import DiskSpaceError
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.loading import Corpus
from redsm5_hpo.device_errors import DeviceFailed
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.confirm import BASELINE, CONFIRM
from redsm5_hpo.hpo.lock import claim_lock
from redsm5_hpo.hpo.progress import Progress
from redsm5_hpo.hpo.pruning import EpochReports
from redsm5_hpo.hpo.retention import StudyCheckpoints
from redsm5_hpo.hpo.study import TrialSpec, failure_reason, run_trials
from redsm5_hpo.hpo.trials import study_history, study_progress_of
from redsm5_hpo.hub_token import TokenGate, check_from_config
from redsm5_hpo.interrupts import StopRequested
from redsm5_hpo.layout import StudyDir, TrialDir, experiments_root
from redsm5_hpo.pipeline.confirmation import scores_test_itself
from redsm5_hpo.pipeline.lifecycle import Lifecycle, Stage, TrialStart
from redsm5_hpo.pipeline.mirroring import publish, pull_trial
from redsm5_hpo.pipeline.opening import OpenStudy, open_study, study_corpus
from redsm5_hpo.pipeline.scoring import score_trial_on_test
from redsm5_hpo.pipeline.services import open_monitor, open_tracker, trial_stores
from redsm5_hpo.pipeline.study_record import StudyRecord
from redsm5_hpo.pipeline.trial import TrialContext, run_trial
from redsm5_hpo.tracking.base import Tracker, TrackerWriter
from redsm5_hpo.tracking.logs import json_log_file
from redsm5_hpo.training.hooks import TrialPruned
from redsm5_hpo.training.loop import NonFiniteLossError

log = logging.getLogger(__name__)


class Worker:
    """Trains the trials this process claims. It is the trial loop's observer (``hpo.study.TrialObserver``):
    ``run`` hands it down to ``run_trials``, which calls ``claimed``, ``train`` and ``finished`` for each
    trial and returns how many it ran."""

    def __init__(
        self,
        opened: OpenStudy,
        corpus: Corpus,
        tracker: Tracker,
        monitor: DiskMonitor | None,
        *,
        progress: bool = True,
        device: str | None = None,
        index: int = 0,
    ) -> None:
        self.opened, self.config, self.study = opened, opened.config, opened.study
        self.corpus, self.tracker, self.monitor = corpus, tracker, monitor
        self.progress, self.device, self.index = progress, device, index
        self.stores = trial_stores(self.config)
        self.study_checkpoints = StudyCheckpoints(self.study, self.config.retention_policy, self.stores)
        self.token_gate = TokenGate(check_from_config(self.config), self.config.hub.recheck_interval_s)
        self.disk_errors: list[DiskSpaceError] = []
        """A full disk stops the worker after its trial (``should_stop``); the first is raised at the end."""
        self.bar = self._progress_bar()

    def _progress_bar(self) -> tqdm:
        """Trials > epochs > batches, nested; on a terminal only (disable=None), so logs stay readable."""
        done = study_progress_of(self.study, self.config.hpo.planned_trials, starting=False).finished
        return tqdm(
            total=self.config.hpo.planned_trials,
            initial=done,
            desc="trials",
            unit="trial",
            position=0,
            disable=None if self.progress else True,
        )

    def run(self) -> int:
        guard = functools.partial(claim_lock, self.opened.study_dir)
        try:
            return run_trials(self.study, self.config, self, storage=self.opened.storage, claim_guard=guard)
        finally:
            self.bar.close()

    def should_stop(self) -> bool:
        return bool(self.disk_errors)

    def claimed(self, trial: optuna.Trial) -> None:
        trial.set_user_attr(attrs.WORKER, {"index": self.index, "pid": os.getpid(), "host": socket.gethostname()})

    def train(self, spec: TrialSpec, trial: optuna.Trial) -> float:
        """Train the claimed trial (new, or the continuation of an interrupted or rolled-back one); its
        Optuna user attrs record why it stopped when it did not complete."""
        lifecycle = Lifecycle(trial)
        lifecycle.enter(Stage.QUEUED)
        trial_id, trial_config, start, run_id, extra_tags = self._continuation(spec, trial)
        progress_now = study_progress_of(self.study, self.config.hpo.planned_trials, starting=True)
        report_progress(self.tracker, self.opened.study_run, progress_now)
        self.token_gate.wait_until_valid(f"trial {progress_now.trial}")
        context = TrialContext(
            self.tracker,
            self.monitor,
            self.study_checkpoints,
            self.opened.study_id,
            spec,
            self.opened.study_run,
            self.progress,
            token_gate=self.token_gate,
            pruner=EpochReports(self.study, trial, spec.stage, trial_config.train.epochs, self.config.hpo),
            lifecycle=lifecycle,
            device_override=self.device,
        )
        tags = extra_tags | progress_now.as_tags() | {"stage": spec.stage}
        try:
            value = run_trial(trial_config, self.corpus, context, trial_id, start, run_id, tags).best_value
            if scores_test_itself(spec.stage, self.config):  # before retention may release its checkpoints
                score_trial_on_test(
                    TrialDir.of(experiments_root(self.config), trial_id), self.stores, self.corpus, self.device
                )
            return value
        except (StopRequested, DeviceFailed) as e:
            trial.set_user_attr(attrs.FAIL_REASON, f"interrupted: {e}; resumable")
            trial.set_user_attr(attrs.RESUMABLE, True)  # `resume` continues it from its newest checkpoint
            raise
        except TrialPruned as e:
            trial.set_user_attr(attrs.PRUNE_REASON, f"{self.config.hpo.pruner} pruner: {e}")
            raise optuna.TrialPruned(str(e)) from None
        except Exception as e:
            trial.set_user_attr(attrs.FAIL_REASON, failure_reason(e))
            if isinstance(e, NonFiniteLossError):
                trial.set_user_attr(attrs.DIVERGED, True)  # its last resume point stays for a rollback
            if isinstance(e, DiskSpaceError):
                trial.set_user_attr(attrs.RESUMABLE, True)  # keep its checkpoints: free space, then resume
                self.disk_errors.append(e)
            raise

    def _continuation(
        self, spec: TrialSpec, trial: optuna.Trial
    ) -> tuple[str, Config, TrialStart, str | None, dict[str, str]]:
        """Which trial this is: a new one, or the continuation of the interrupted trial it was re-queued
        for (its id, its own config, its run); records the id and directory on the Optuna trial."""
        origin = trial.user_attrs.get(attrs.RESUME_OF)
        previous = self.study.trials[origin].user_attrs if origin is not None else {}
        trial_id = previous.get(attrs.TRIAL_ID) or uuid.uuid4().hex
        files = TrialDir.of(experiments_root(self.config), trial_id)
        trial.set_user_attr(attrs.TRIAL_ID, trial_id)
        trial.set_user_attr(attrs.TRIAL_DIR, str(files.path))
        if origin is None:
            log.info("trial %d/%d%s: %s", spec.number + 1, spec.total, stage_note(spec), spec.params)  # its slot
            return trial_id, spec.config, TrialStart.FRESH, None, {}
        log.info("resuming interrupted trial %d (re-queued as trial %d): %s", origin, spec.number, spec.params)
        # the trial's own config: a rollback may have changed it (another machine may have started it)
        pull_trial(self.stores.bucket, files.path)
        # where the study is now (another machine may have started the trial elsewhere)
        trial_config = dataclasses.replace(
            files.read_config(), experiments_dir=self.config.experiments_dir, remote=self.config.remote
        )
        run_id = previous.get(attrs.RUN_ID)
        if attrs.ROLLBACK_EPOCH in trial.user_attrs:  # continue from the earlier checkpoint in a new run
            tags = {"rolled_back_from": str(run_id), "rollback_epoch": str(trial.user_attrs[attrs.ROLLBACK_EPOCH])}
            return trial_id, trial_config, TrialStart.ROLLED_BACK, None, tags
        if run_id:
            trial.set_user_attr(attrs.RUN_ID, run_id)
            return trial_id, trial_config, TrialStart.RESUMED, run_id, {}
        return trial_id, trial_config, TrialStart.ROLLED_BACK, None, {}

    def finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.study_checkpoints.release_finished()
        # the study's storage and logs, for a machine that continues it
        publish(self.stores.bucket, self.stores.root, self.opened.study_dir)
        if not trial.user_attrs.get(attrs.RESUMABLE):  # a disk-full trial continues later: its point then
            log_study_series(self.tracker, self.opened.study_run, study, trial.number)
        progress = study_progress_of(study, self.config.hpo.planned_trials, False)
        report_progress(self.tracker, self.opened.study_run, progress)
        self.bar.update(progress.finished - self.bar.n)
        if progress.best_so_far is not None:
            self.bar.set_postfix(best=f"{progress.best_so_far:.4f}")


def stage_note(spec: TrialSpec) -> str:
    """`` (baseline)``, `` (confirmation, seed 123)`` or nothing for a search trial."""
    if spec.stage == CONFIRM:
        return f" (confirmation, seed {spec.config.train.seed})"
    return " (baseline: the configuration's own values)" if spec.stage == BASELINE else ""


def log_study_series(tracker: TrackerWriter, study_run: str, study: optuna.Study, number: int) -> None:
    """The study run's ``best_so_far`` and ``completed_trials`` once trial ``number`` finished, at the step
    of its 1-based index in the study (``hpo.study.counted_trials``): steps 1..n_trials, whatever numbers
    Optuna gave continuations. Each index is logged by the one worker that finished its trial."""
    point = next((p for p in study_history(study) if p.number == number), None)
    if point is None:  # a trial that does not count (a surplus claim): no point of its own
        return
    best = float("nan") if point.best_so_far is None else point.best_so_far
    tracker.log_metrics(study_run, {"best_so_far": best, "completed_trials": point.completed}, step=point.trial)


def report_progress(tracker: TrackerWriter, study_run: str, progress: Progress) -> None:
    """On stdout and in the JSON log (``progress`` field), and as tags of the study's run."""
    log.info("%s", progress.describe(), extra={"progress": progress.as_dict()})
    tracker.set_tags(study_run, progress.as_tags())


def work_on_study(study_dir: Path, index: int, device: str | None = None) -> int:
    """``redsm5-hpo worker``: one of the worker processes a study started (``hpo.n_workers``). Runs waiting
    trials of the study in ``study_dir`` until none is left; the study process that started it watches it
    and writes the report. Raises ``DiskSpaceError`` after its trial when the disk filled."""
    record = StudyRecord.read(study_dir)
    config = record.resolved_config()
    resolve_runtime(config.train, device)
    with (
        json_log_file(StudyDir(Path(study_dir)).logs / f"events.worker-{index}.jsonl", config.logs),
        open_monitor(config) as monitor,
        open_tracker(config) as tracker,
    ):
        opened = open_study(config, record, study_dir, tracker)
        corpus = study_corpus(config, record.study_id)
        worker = Worker(opened, corpus, tracker, monitor, progress=False, device=device, index=index)
        ran = worker.run()
        log.info("worker %d ran %d trial(s)", index, ran)
        if worker.disk_errors:
            raise worker.disk_errors[0]
    return ran
