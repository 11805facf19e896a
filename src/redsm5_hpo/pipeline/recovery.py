"""Interrupted trials: re-queue them on resume, roll one back to an earlier checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna

from redsm5_hpo.checkpoints.loading import newest_resumable_first
from redsm5_hpo.checkpoints.store import TrialStores
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.slots import queue_behind_continuations
from redsm5_hpo.hpo.trials import uncounted
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
        study.enqueue_trial(trial.params, user_attrs={attrs.RESUME_OF: trial.number, **held_slot(trial)})
        log.warning("trial %d was interrupted; it resumes from its newest checkpoint in %s", trial.number, files.path)
    else:
        if run_id:
            tracker.end_run(run_id, "KILLED")
        study.enqueue_trial(trial.params, user_attrs=held_slot(trial))
        log.warning("trial %d was interrupted before its first checkpoint; it restarts from epoch 0", trial.number)
    if queue_first:
        queue_behind_continuations(study)


def held_slot(trial: optuna.trial.FrozenTrial) -> dict[str, object]:
    """The queue slot an interrupted trial held (which slot, its stage, its set parameters and seed): its
    continuation takes it over."""
    return {key: trial.user_attrs[key] for key in attrs.SLOT_ATTRS if key in trial.user_attrs}
