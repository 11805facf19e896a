"""One worker's share of a study: claim waiting trials one at a time and train them.

The study process runs this itself with one worker (``hpo.n_workers=1``); with several, each worker
process it starts (``redsm5-hpo worker``, ``work_on_study``) runs it on the same storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from tqdm.auto import tqdm

from redsm5_hpo.checkpoints.disk import DiskSpaceError
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.loading import Corpus, load_corpus
from redsm5_hpo.device_errors import DeviceFailed
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.confirm import BASELINE, CONFIRM, SEARCH
from redsm5_hpo.hpo.lock import claim_lock
from redsm5_hpo.hpo.progress import Progress, early_eta, format_duration, study_progress
from redsm5_hpo.hpo.retention import StudyCheckpoints
from redsm5_hpo.hpo.storage import open_storage
from redsm5_hpo.hpo.study import (
    TrialSpec,
    counted_trials,
    create_study,
    failure_reason,
    run_trials,
    study_direction,
    study_history,
)
from redsm5_hpo.hub_token import TokenGate, check_from_config
from redsm5_hpo.interrupts import StopRequested
from redsm5_hpo.layout import StudyDir, TrialDir, experiments_root
from redsm5_hpo.pipeline.confirmation import scores_test_itself
from redsm5_hpo.pipeline.evaluate import score_trial_on_test
from redsm5_hpo.pipeline.lifecycle import Lifecycle, Stage, TrialStart
from redsm5_hpo.pipeline.mirroring import publish, pull_trial
from redsm5_hpo.pipeline.parts import open_monitor, open_tracker, trial_stores
from redsm5_hpo.pipeline.record import StudyRecord
from redsm5_hpo.pipeline.recovery import requeue_trial
from redsm5_hpo.pipeline.trial import TrialContext, run_trial
from redsm5_hpo.tracking.base import Tracker, TrackerWriter
from redsm5_hpo.tracking.logs import json_log_file
from redsm5_hpo.training.hooks import TrialPruned
from redsm5_hpo.training.loop import NonFiniteLossError

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """Trains the trials this process claims; ``run`` returns how many it ran."""

    config: Config
    study_id: str
    study_run: str
    corpus: Corpus
    tracker: Tracker
    monitor: DiskMonitor | None
    progress: bool = True
    device: str | None = None
    index: int = 0
    study_dir: Path | None = None
    """Workers that share it claim trials one at a time (``hpo.lock.claim_lock``)."""
    disk_errors: list[DiskSpaceError] = field(default_factory=list)

    def run(self, study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
        self.study = study
        self.stores = trial_stores(self.config)
        self.study_checkpoints = StudyCheckpoints(study, self.config.retention_policy, self.stores)
        self.token_gate = TokenGate(check_from_config(self.config), self.config.hub.recheck_interval_s)
        done = study_progress_of(study, self.config.hpo.planned_trials, starting=False).finished
        # trials > epochs > batches, nested; on a terminal only (disable=None), so logs stay readable
        self.bar = tqdm(
            total=self.config.hpo.planned_trials,
            initial=done,
            desc="trials",
            unit="trial",
            position=0,
            disable=None if self.progress else True,
        )
        try:
            return run_trials(
                study,
                self.config,
                self.train_trial,
                self.on_trial_end,
                stop=lambda: bool(self.disk_errors),
                storage=storage,
                on_claim=self.on_claim,
                claim_guard=functools.partial(claim_lock, self.study_dir) if self.study_dir else contextlib.nullcontext,
            )
        finally:
            self.bar.close()

    def on_claim(self, trial: optuna.Trial) -> None:
        trial.set_user_attr(attrs.WORKER, {"index": self.index, "pid": os.getpid(), "host": socket.gethostname()})

    def train_trial(self, spec: TrialSpec, trial: optuna.Trial) -> float:
        """Train the claimed trial (new, or the continuation of an interrupted or rolled-back one); its
        Optuna user attrs record why it stopped when it did not complete."""
        lifecycle = Lifecycle(trial)
        lifecycle.enter(Stage.QUEUED)
        trial_id, trial_config, start, run_id, extra_tags = self._continuation(spec, trial)
        progress_now = study_progress_of(self.study, self.config.hpo.planned_trials, starting=True)
        report_progress(self.tracker, self.study_run, progress_now)
        self.token_gate.wait_until_valid(f"trial {progress_now.trial}")
        epochs = trial_config.train.epochs
        context = TrialContext(
            self.tracker,
            self.monitor,
            self.study_checkpoints,
            self.study_id,
            spec,
            self.study_run,
            self.progress,
            on_run_started=lambda run_id: trial.set_user_attr(attrs.RUN_ID, run_id),
            token_gate=self.token_gate,
            should_prune=lambda epoch, value: self._on_epoch(trial, spec.stage, epoch, value, epochs),
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
                self.disk_errors.append(e)  # the worker stops after this trial (run_trials' stop)
            raise

    def _on_epoch(self, trial: optuna.Trial, stage: str, epoch: int, value: float, epochs: int) -> bool:
        """Feed the pruner; before any trial has finished, the first epoch gives the study its first ETA
        (the trials' own ETA takes over when one ends). A confirmation trial tells the pruner nothing and
        neither it nor the baseline is ever pruned."""
        if epoch == 1 and trial.datetime_start is not None and not counted_trials(self.study):
            elapsed = (dt.datetime.now() - trial.datetime_start).total_seconds()
            hpo = self.config.hpo
            eta = early_eta(elapsed, 1, epochs, hpo.planned_trials, max(1, hpo.n_workers))
            log.info(
                "progress: the first epoch took %s (set-up included); ETA %s from it, refined as trials end",
                format_duration(elapsed),
                format_duration(eta),
            )
        if stage == CONFIRM:
            return False
        return _report_epoch(trial, epoch, value) and stage == SEARCH

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

    def on_trial_end(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.study_checkpoints.release_finished()
        if self.study_dir is not None:  # the study's storage and logs, for a machine that continues it
            publish(self.stores.bucket, self.stores.root, self.study_dir)
        if not trial.user_attrs.get(attrs.RESUMABLE):  # a disk-full trial continues later: its point then
            log_study_series(self.tracker, self.study_run, study, trial.number)
        progress = study_progress_of(study, self.config.hpo.planned_trials, False)
        report_progress(self.tracker, self.study_run, progress)
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


def study_progress_of(study: optuna.Study, total: int, starting: bool, workers: int = 1) -> Progress:
    """Progress over the trials that count (finished, not re-queued); ``starting``: the next one begins."""
    finished = [t for _, t in counted_trials(study)]
    durations = [t.duration.total_seconds() for t in finished if t.duration is not None]
    values = [t.value for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    return study_progress(len(finished) + int(starting), total, durations, values, study_direction(study), workers)


def report_progress(tracker: TrackerWriter, study_run: str, progress: Progress) -> None:
    """On stdout and in the JSON log (``progress`` field), and as tags of the study's run."""
    log.info("%s", progress.describe(), extra={"progress": progress.as_dict()})
    tracker.set_tags(study_run, progress.as_tags())


def _report_epoch(trial: optuna.Trial, epoch: int, value: float) -> bool:
    """Feed the pruner (and the intermediate-values plot); True when the trial should stop."""
    trial.report(value, epoch)
    return trial.should_prune()


def open_study_storage(url: str, config: Config, tracker: Tracker) -> optuna.storages.BaseStorage:
    """The study's storage; on a database server a trial whose worker went silent (Optuna's heartbeat) is
    re-queued to continue from its newest checkpoint."""
    on_stale = functools.partial(requeue_trial, tracker=tracker, stores=trial_stores(config))
    return open_storage(url, config.hpo.heartbeat_interval_s, config.hpo.stale_after_s, on_stale)


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
        storage = open_study_storage(record.storage, config, tracker)
        study = create_study(config, record.study_name, storage)
        corpus = load_corpus(config.data, config.seed)
        worker = Worker(
            config, record.study_id, record.mlflow_run_id, corpus, tracker, monitor, False, device, index, study_dir
        )
        ran = worker.run(study, storage)
        log.info("worker %d ran %d trial(s)", index, ran)
        if worker.disk_errors:
            raise worker.disk_errors[0]
    return ran
