"""Interrupted trials: re-queue them on resume, roll one back to an earlier checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from redsm5_hpo.checkpoints.loading import newest_resumable_first
from redsm5_hpo.checkpoints.store import TrialStores, verify
from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.lock import study_lock
from redsm5_hpo.hpo.study import (
    create_study,
    queue_behind_continuations,
    uncounted,
)
from redsm5_hpo.layout import StudyDir
from redsm5_hpo.pipeline.parts import (
    open_tracker,
    trial_stores,
)
from redsm5_hpo.pipeline.record import StudyRecord
from redsm5_hpo.tracking.base import TrackerWriter

log = logging.getLogger(__name__)


def requeue_interrupted_trials(
    study: optuna.Study,
    tracker: TrackerWriter,
    stores: TrialStores,
    dead: Callable[[optuna.trial.FrozenTrial], bool] = lambda t: True,
) -> list[int]:
    """Trials left RUNNING by a dead process (``dead`` tells which: all of them for the process holding the
    study lock, those of one worker for the process that watched it die) and trials stopped resumable (a
    full disk, a failed GPU) go back into the queue (``requeue_trial``). Returns their numbers."""
    skip = uncounted(study)
    found = []
    for trial in study.get_trials(deepcopy=False):
        stale = trial.state == optuna.trial.TrialState.RUNNING and dead(trial)
        stopped = trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs.get(attrs.RESUMABLE)
        if trial.number not in skip and (stale or stopped):
            requeue_trial(study, trial, tracker, stores, queue_first=False)
            found.append(trial.number)
    queue_behind_continuations(study)
    return found


def requeue_trial(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    tracker: TrackerWriter,
    stores: TrialStores,
    queue_first: bool = True,
) -> None:
    """An interrupted trial goes back into the queue with its parameters and slot: from its newest valid
    checkpoint (here or in the bucket) in the same MLflow run when it has one, from scratch in a new run
    otherwise. The original is failed if still RUNNING, marked re-queued, and no longer counts. Also
    Optuna's stale-trial callback (``hpo.storage``): there the trial arrives already failed. ``queue_first``:
    its continuation goes ahead of the slots still waiting (``queue_behind_continuations``)."""
    files = stores.trial(trial.user_attrs.get(attrs.TRIAL_DIR, "."))
    has_checkpoint = bool(newest_resumable_first(stores.store(files).list()))
    run_id = trial.user_attrs.get(attrs.RUN_ID)
    if trial.state == optuna.trial.TrialState.RUNNING:  # its continuation says why
        try:  # atomic in the storage: of two processes finding it dead, one re-queues it
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            log.info("trial %d was closed by another process meanwhile; that one re-queues it", trial.number)
            return
    study.set_user_attr(
        attrs.REQUEUED_TRIALS, sorted(set(study.user_attrs.get(attrs.REQUEUED_TRIALS, [])) | {trial.number})
    )
    if has_checkpoint and run_id:
        study.enqueue_trial(trial.params, user_attrs={attrs.RESUME_OF: trial.number, **_slot(trial)})
        log.warning("trial %d was interrupted; it resumes from its newest checkpoint in %s", trial.number, files.path)
    else:
        if run_id:
            tracker.end_run(run_id, "KILLED")
        study.enqueue_trial(trial.params, user_attrs=_slot(trial))
        log.warning("trial %d was interrupted before its first checkpoint; it restarts from epoch 0", trial.number)
    if queue_first:
        queue_behind_continuations(study)


def rollback_trial(study_dir: Path, trial_id: str, epoch: int, overrides: dict[str, Any]) -> str:
    """Roll an interrupted or failed trial back to its retained resumable checkpoint of ``epoch``: newer
    checkpoints are deleted, ``overrides`` (e.g. a lower ``train.lr_head``) go into the trial's config, and
    the trial is re-queued to continue from that epoch in a new MLflow run (tagged ``rolled_back_from``)
    at the next ``resume``. Returns a summary line."""
    record = StudyRecord.read(study_dir)
    with study_lock(study_dir):
        study = create_study(record.resolved_config(), record.study_name, record.storage)
        requeued = set(study.user_attrs.get(attrs.REQUEUED_TRIALS, []))
        matches = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(attrs.TRIAL_ID) == trial_id]
        if not matches:
            raise StudyError(f"no trial {trial_id} in study {record.study_id}")
        trial = matches[-1]
        interrupted = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL)
        if trial.state not in interrupted or trial.number in uncounted(study):
            raise StudyError(
                f"trial {trial_id} is {trial.state.name}: only an interrupted or failed trial can be rolled back "
                "(stop the study first; a completed trial is final)"
            )
        stores = trial_stores(record.resolved_config(), Path(study_dir).parent)
        files = stores.trial(trial.user_attrs[attrs.TRIAL_DIR])
        store = stores.store(files)
        resumable = [c for c in store.list() if c.resumable]
        target = [c for c in resumable if c.epoch == epoch]
        if not target:
            raise StudyError(
                f"trial {trial_id} has no resumable checkpoint of epoch {epoch} (retained: "
                f"{[c.epoch for c in resumable] or 'none'}). Earlier resume points exist only when the study runs "
                "with e.g. retention_policy.keep_last_n=3."
            )
        verify(target[0])
        trial_config = files.read_config()
        if overrides:
            trial_config = apply_overrides(trial_config, overrides)
            files.write_config(trial_config)
        for checkpoint in store.list():
            if checkpoint.epoch > epoch:
                store.delete(checkpoint)
        if trial.state == optuna.trial.TrialState.RUNNING:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        study.set_user_attr(attrs.REQUEUED_TRIALS, sorted(requeued | {trial.number}))
        study.enqueue_trial(
            trial.params, user_attrs={attrs.RESUME_OF: trial.number, attrs.ROLLBACK_EPOCH: epoch, **_slot(trial)}
        )
        queue_behind_continuations(study)
        if attrs.RUN_ID in trial.user_attrs:  # its metrics stay as they were; the trial continues in a new run
            with open_tracker(trial_config) as tracker:
                tracker.end_run(trial.user_attrs[attrs.RUN_ID], "KILLED")
    changed = f" with {overrides}" if overrides else ""
    resume = StudyDir(Path(study_dir)).command("resume")
    return f"trial {trial_id} rolled back to epoch {epoch}{changed}; `{resume}` continues it from there"


def _slot(trial: optuna.trial.FrozenTrial) -> dict[str, object]:
    """The queue slot an interrupted trial held (which slot, its stage, its set parameters and seed): its
    continuation takes it over."""
    return {key: trial.user_attrs[key] for key in attrs.SLOT_ATTRS if key in trial.user_attrs}
