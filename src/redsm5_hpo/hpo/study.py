"""The Optuna study: a seeded sampler (TPE by default), queued trial slots taken one at a time by one or more
workers, failures recorded and skipped.

The study knows nothing about models: it asks the worker that runs the loop (a ``TrialObserver``, passed
down) to train one configuration and return the value of the optimization metric.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import optuna

from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.config.schema import Config
from redsm5_hpo.device_errors import DeviceFailed
from redsm5_hpo.devices import release_device_memory
from redsm5_hpo.errors import FILES_ONLY, first_line
from redsm5_hpo.evaluation.metrics import metric_direction
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.confirm import BASELINE, SEARCH
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.samplers import ResumableSampler
from redsm5_hpo.hpo.slots import apply_stopping, claim_slot, confirmation_may_follow, enqueue_slots, queue_confirmation
from redsm5_hpo.hpo.space import suggest
from redsm5_hpo.hpo.storage import fail_stale_trials, heartbeat, open_storage
from redsm5_hpo.hpo.trials import study_direction, uncounted
from redsm5_hpo.interrupts import StopRequested, raise_if_requested

log = logging.getLogger(__name__)

CONFIRM_POLL_S = 2.0
"""How often a worker with no trial looks whether the confirmation trials were queued."""


@dataclass(frozen=True)
class TrialSpec:
    number: int
    """0-based position in the study."""
    total: int
    config: Config
    params: dict[str, object]
    stage: str = SEARCH
    """``baseline``, ``search`` or ``confirm`` (``hpo.confirm``)."""


class TrialObserver(Protocol):
    """The worker that runs the trial loop, as the loop sees it. The loop calls down into it and returns;
    it never imports the worker (``pipeline.worker.Worker`` implements this)."""

    def claimed(self, trial: optuna.Trial) -> None:
        """This worker now holds ``trial`` (before anything is trained)."""

    def train(self, spec: TrialSpec, trial: optuna.Trial) -> float:
        """Train the trial; the objective's value (raises ``optuna.TrialPruned`` when pruned)."""
        ...

    def finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """The trial's outcome is in the storage."""

    def should_stop(self) -> bool:
        """Checked before each claim: True ends this worker's loop (a full disk)."""
        ...


def failure_reason(error: BaseException) -> str:
    """One line for reports, tags and Optuna: the error's own ``reason`` when it carries one (a diverged
    trial's ``non_finite_loss: ...``), else its type and the first line of its message."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, str):
        return reason
    first = first_line(error)
    return type(error).__name__ if first == type(error).__name__ else f"{type(error).__name__}: {first}"


def make_pruner(config: Config) -> optuna.pruners.BasePruner:
    """``hpo.pruner``: none, median (after ``pruner_startup_trials`` trials and ``pruner_warmup_epochs``
    epochs) or hyperband (rungs from 1 epoch to ``train.epochs``)."""
    h = config.hpo
    if h.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=h.pruner_startup_trials, n_warmup_steps=h.pruner_warmup_epochs
        )
    if h.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=config.train.epochs, reduction_factor=h.hyperband_reduction_factor
        )
    return optuna.pruners.NopPruner()


def create_study(config: Config, study_name: str, storage: str | optuna.storages.BaseStorage) -> optuna.Study:
    """A study in the optimization metric's direction (a loss is minimized, any other metric maximized)
    with the ``hpo.sampler`` seeded from ``config.seed`` (``ResumableSampler``) and the configured pruner. An
    existing study of the same name must go the same way. ``storage`` is a URL (``hpo.storage``) or a storage
    ``open_storage`` made."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if isinstance(storage, str):
        storage = open_storage(storage, config.hpo.heartbeat_interval_s, config.hpo.stale_after_s)
    metric = config.train.optimization_metric
    direction = metric_direction(metric)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=ResumableSampler(config.seed, config.hpo.sampler, uncounted),
        pruner=make_pruner(config),
        direction=direction,
        load_if_exists=True,
    )
    if study_direction(study) != direction:
        raise StudyError(
            f"study {study_name} was created to {study_direction(study)} its objective, but "
            f"train.optimization_metric={metric} is {direction}d; resume it with the metric it was started with"
        )
    name_objective(study, metric)
    return study


def name_objective(study: optuna.Study, metric: str) -> None:
    """The objective's name in the storage, so that optuna-dashboard shows ``metric``, not "Objective 0"
    (Optuna marks ``set_metric_names`` experimental: its warning is expected, not the user's concern)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if study.metric_names != [metric]:
            study.set_metric_names([metric])


def record_answer(study: optuna.Study, report_path: str, best_trial_id: str, data_revision: str) -> None:
    """The study's key facts as its user attributes, for whoever reads the storage (optuna-dashboard)."""
    facts = {attrs.REPORT_PATH: report_path, attrs.BEST_TRIAL_ID: best_trial_id, attrs.DATA_REVISION: data_revision}
    for key, value in facts.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def run_trials(
    study: optuna.Study,
    config: Config,
    worker: TrialObserver,
    storage: optuna.storages.BaseStorage | None = None,
    claim_guard: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> int:
    """Run queued trial slots one at a time until none is left (other workers may take some) or the ``worker`` says
    to stop after a trial; a failing trial is recorded and the study goes on. A new study gets its
    ``hpo.n_trials`` slots first. Returns how many trials this process ran. The ``worker`` is told each trial as
    soon as it holds it, trains it, and is told once its outcome is stored. With a database ``storage`` the
    running trial records Optuna heartbeats, and before each claim the trials of dead workers are failed and re-
    queued (``storage.fail_stale_trials``). After a SIGTERM / SIGINT (``interrupts``) the running trial is told
    FAIL (the worker marked it resumable) and ``StopRequested`` propagates; no new trial starts; the same for
    ``DeviceFailed`` (the GPU failed: the process must end). Between trials the device's memory cache is handed
    back (``devices.release_device_memory``). Each claim happens inside ``claim_guard()`` (``hpo.lock.claim_lock``
    for workers sharing a directory). With ``hpo.confirm``, the worker that finds the search over queues the
    confirmation trials (``queue_confirmation``); the others wait for them instead of leaving."""
    total = config.hpo.planned_trials
    enqueue_slots(study, config)
    ran = 0
    while not worker.should_stop():
        raise_if_requested()  # before a slot is claimed: no trial is left RUNNING for nothing
        fail_stale_trials(study)
        with claim_guard():
            apply_stopping(study, config)
            trial = claim_slot(study) or (claim_slot(study) if queue_confirmation(study, config) else None)
        if trial is None:
            if not confirmation_may_follow(study, config):
                break
            time.sleep(CONFIRM_POLL_S)  # other workers finish the search; the confirmation trials follow
            continue
        ran += 1
        worker.claimed(trial)
        try:
            with heartbeat(storage, study, trial, config.hpo.heartbeat_interval_s):
                state, value = _run_one(trial, config, worker, total)
        except (StopRequested, DeviceFailed):  # interrupted, not failed: the worker marked it resumable
            study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
        frozen = study.tell(trial, value, state=state, skip_if_finished=True)
        worker.finished(study, frozen)
        release_device_memory()
    return ran


def _run_one(
    trial: optuna.Trial, config: Config, worker: TrialObserver, total: int
) -> tuple[optuna.trial.TrialState, float | None]:
    slot = int(trial.user_attrs.get(attrs.SLOT, trial.number))
    try:
        spec = trial_spec(trial, config, slot, total)
        value = worker.train(spec, trial)
        if not math.isfinite(value):
            raise ValueError(f"trial {trial.number} returned a non-finite objective {value}")
        return optuna.trial.TrialState.COMPLETE, value
    except optuna.TrialPruned:
        return optuna.trial.TrialState.PRUNED, None
    except Exception as e:
        # the trial itself logged the failure on the terminal; this record gives the study's count in the JSON logs
        log.warning("trial %d/%d failed: %s", slot + 1, total, failure_reason(e), extra=FILES_ONLY)
        return optuna.trial.TrialState.FAIL, None


def trial_spec(trial: optuna.Trial, config: Config, slot: int, total: int) -> TrialSpec:
    """What the claimed trial trains: sampled parameters (a search trial), the configuration's own values
    (the baseline), or a search configuration with a confirmation seed (``train.seed``)."""
    stage = trial.user_attrs.get(attrs.STAGE, SEARCH)
    if stage == SEARCH:
        params = suggest(trial, config.hpo.search_space)
        return TrialSpec(slot, total, apply_overrides(config, params), params)
    params = dict(trial.user_attrs.get(attrs.PARAMS, {}))
    if stage == BASELINE:
        return TrialSpec(slot, total, config, params, stage)
    seeded = apply_overrides(config, {**params, "train.seed": int(trial.user_attrs[attrs.SEED])})
    return TrialSpec(slot, total, seeded, params, stage)
