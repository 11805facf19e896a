"""The Optuna study: a seeded sampler (TPE by default), queued trial slots taken one at a time by one or more
workers, failures recorded and skipped.

The study knows nothing about models: it asks ``train_trial`` (given by the caller) to train
one configuration and return the value of the optimization metric.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.config.resume import value_at
from redsm5_hpo.config.schema import Config, HpoConfig
from redsm5_hpo.config.search_space import flatten_space, is_active, suggestion_order
from redsm5_hpo.device_errors import DeviceFailed
from redsm5_hpo.devices import release_device_memory
from redsm5_hpo.errors import FILES_ONLY, first_line
from redsm5_hpo.evaluation.metrics import Direction, metric_direction, oriented
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.confirm import BASELINE, CONFIRM, SEARCH, Run, answer, confirm_seeds, own_values, top_configurations
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.progress import HistoryPoint, best_value_history
from redsm5_hpo.hpo.samplers import ResumableSampler
from redsm5_hpo.hpo.space import suggest
from redsm5_hpo.hpo.stopping import PLATEAU, TIMEOUT, budget_spent, describe, plateaued
from redsm5_hpo.hpo.storage import ask, fail_stale_trials, heartbeat, open_storage
from redsm5_hpo.interrupts import StopRequested, raise_if_requested

log = logging.getLogger(__name__)

LIVE = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
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


TrainTrial = Callable[[TrialSpec, optuna.Trial], float]


def failure_reason(error: BaseException) -> str:
    """One line for reports, tags and Optuna: the error's own ``reason`` when it carries one (a diverged
    trial's ``non_finite_loss: ...``), else its type and the first line of its message."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, str):
        return reason
    first = first_line(error)
    return type(error).__name__ if first == type(error).__name__ else f"{type(error).__name__}: {first}"


"""User attr of a claimed trial: ``{"index": i, "pid": pid, "host": name}`` of the worker running it."""


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


def study_direction(study: optuna.Study) -> Direction:
    return "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"


def logical_position(trial: optuna.trial.FrozenTrial, trials: Sequence[optuna.trial.FrozenTrial]) -> int:
    """Where an uninterrupted run puts ``trial``: the queue slot it holds (the continuation of an interrupted
    or rolled-back trial stands in for the trial it continues, along a chain of continuations), else its
    number. ``trials`` is the study's trials in number order."""
    seen: set[int] = set()
    while attrs.SLOT not in trial.user_attrs and attrs.RESUME_OF in trial.user_attrs and trial.number not in seen:
        seen.add(trial.number)
        trial = trials[int(trial.user_attrs[attrs.RESUME_OF])]
    return int(trial.user_attrs.get(attrs.SLOT, trial.number))


def counted_trials(study: optuna.Study) -> list[tuple[int, optuna.trial.FrozenTrial]]:
    """The finished trials that count towards ``hpo.n_trials``, each with its 1-based index in the study, in
    index order. The index is the ``k`` of the log's ``trial k/N`` (its queue slot, which a continuation
    takes over), whatever number Optuna gave it: the study's series are stepped by it."""
    trials = study.get_trials(deepcopy=False)
    skip = uncounted(study)
    finished = [t for t in trials if t.state.is_finished() and t.number not in skip]
    return sorted(((logical_position(t, trials) + 1, t) for t in finished), key=lambda p: (p[0], p[1].number))


def study_history(study: optuna.Study) -> list[HistoryPoint]:
    """The study's best-value series over its counted trials (``counted_trials``), stepped by their index."""
    outcomes = [(index, t.number, t.state.name.lower(), t.value) for index, t in counted_trials(study)]
    return best_value_history(outcomes, study_direction(study))


def study_runs(study: optuna.Study) -> list[Run]:
    """The counted trials as ``hpo.confirm`` sees them (stage, set or sampled parameters, oriented value)."""
    direction, runs = study_direction(study), []
    for index, t in counted_trials(study):
        complete = t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
        value = oriented(float(t.value or 0.0), direction) if complete else None
        group, seed = t.user_attrs.get(attrs.CONFIRM_GROUP), t.user_attrs.get(attrs.SEED)
        stage = t.user_attrs.get(attrs.STAGE, SEARCH)
        runs.append(Run(t.number, index, stage, trial_params(t), value, group, seed))
    return runs


def trial_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """Its parameters: sampled (Optuna's), or set (a baseline or confirmation trial's ``PARAMS``)."""
    return dict(trial.params) or dict(trial.user_attrs.get(attrs.PARAMS, {}))


def confirmation_done(study: optuna.Study) -> bool:
    """Every confirmation trial the study queued (``queue_confirmation``) has finished."""
    queued = study.user_attrs.get(attrs.CONFIRM_QUEUED)
    if queued is None:
        return False
    return sum(1 for r in study_runs(study) if r.stage == CONFIRM) >= int(queued)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The trial that answers the study: its best completed baseline or search trial, or, once its
    confirmation finished, the winning configuration's best seed (``hpo.confirm``). Among tied trials,
    the one with the earliest logical position: an interrupted trial continues under a new Optuna number,
    so Optuna's own ``best_trial`` (the lowest number among ties) could name another trial after a resume
    than an uninterrupted run does. Release, the disk guard and the test evaluation all use this one rule."""
    best = answer(study_runs(study), confirmation_done(study))
    return None if best is None else study.get_trials(deepcopy=False)[best.number]


def run_trials(
    study: optuna.Study,
    config: Config,
    train_trial: TrainTrial,
    on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
    storage: optuna.storages.BaseStorage | None = None,
    on_claim: Callable[[optuna.Trial], None] | None = None,
    claim_guard: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> int:
    """Run queued trial slots one at a time until none is left (other workers may take some) or ``stop()``
    says so after a trial; a failing trial is recorded and the study goes on. A new study gets its
    ``hpo.n_trials`` slots first. Returns how many trials this process ran. ``on_claim`` is told each
    trial as soon as this worker holds it. With a database ``storage`` the running trial records Optuna
    heartbeats, and before each claim the trials of dead workers are failed and re-queued
    (``storage.fail_stale_trials``). After a SIGTERM / SIGINT (``interrupts``) the running trial is told
    FAIL (its ``train_trial`` marked it resumable) and ``StopRequested`` propagates; no new trial starts;
    the same for ``DeviceFailed`` (the GPU failed: the process must end). Between trials the device's memory
    cache is handed back (``devices.release_device_memory``).
    Each claim happens inside ``claim_guard()`` (``hpo.lock.claim_lock`` for workers sharing a directory).
    With ``hpo.confirm``, the worker that finds the search over queues the confirmation trials
    (``queue_confirmation``); the others wait for them instead of leaving."""
    total = config.hpo.planned_trials
    enqueue_slots(study, config)
    ran = 0
    while not stop():
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
        if on_claim:
            on_claim(trial)
        try:
            with heartbeat(storage, study, trial, config.hpo.heartbeat_interval_s):
                state, value = _run_one(trial, config, train_trial, total)
        except (StopRequested, DeviceFailed):  # interrupted, not failed: train_trial marked it resumable
            study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
        frozen = study.tell(trial, value, state=state, skip_if_finished=True)
        if on_trial_end:
            on_trial_end(study, frozen)
        release_device_memory()
    return ran


def _run_one(
    trial: optuna.Trial, config: Config, train_trial: TrainTrial, total: int
) -> tuple[optuna.trial.TrialState, float | None]:
    slot = int(trial.user_attrs.get(attrs.SLOT, trial.number))
    try:
        spec = trial_spec(trial, config, slot, total)
        value = train_trial(spec, trial)
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


def baseline_params(config: Config) -> dict[str, Any]:
    """The configuration's own value of each parameter of the search space (those whose ``when`` holds)."""
    flat, values = flatten_space(config.hpo.search_space), dict[str, Any]()
    for name in suggestion_order(flat):
        if is_active(flat[name], values):
            values |= own_values({name: value_at(config, name)})
    return values


def enqueue_slots(study: optuna.Study, config: Config, warm: Sequence[dict[str, Any]] = (), source: str = "") -> None:
    """The study's baseline and search slots that no trial holds yet: all of them for a new study (the
    baseline trial first, with ``hpo.baseline_trial``, then ``hpo.n_trials`` search slots), the extra
    ones when a resume raised ``hpo.n_trials``. Workers pop them one by one, so however many workers
    run, exactly these trials run (plus re-queued continuations of interrupted ones). A new study's time
    budget starts here, and its first search slots take the ``warm`` parameter sets (``hpo.warm_start``,
    from ``source``): Optuna's ``enqueue_trial`` fixes them, the sampler draws the rest."""
    hpo = config.hpo
    trials = study.get_trials(deepcopy=False)
    if not trials:
        study.set_user_attr(attrs.BUDGET_START, time.time())
    held = {t.user_attrs.get(attrs.SLOT) for t in trials}
    first = int(hpo.baseline_trial)
    warm = list(warm) if not trials else []
    for slot in range(hpo.search_slots):
        if slot in held:
            continue
        if slot == 0 and hpo.baseline_trial:
            own = {attrs.STAGE: BASELINE, attrs.PARAMS: baseline_params(config)}
            study.enqueue_trial({}, user_attrs={attrs.SLOT: 0} | own)
        elif 0 <= slot - first < len(warm):
            study.enqueue_trial(warm[slot - first], user_attrs={attrs.SLOT: slot, attrs.WARM_START: source})
        else:
            study.enqueue_trial({}, user_attrs={attrs.SLOT: slot})


def stop_reason(study: optuna.Study, config: Config, searching: bool = True) -> str | None:
    """Why the study claims no more trials (``hpo.stopping``): its time budget is spent, or the search has
    plateaued (only while search slots wait, with ``searching``); None when it goes on."""
    hpo = config.hpo
    started = float(study.user_attrs.get(attrs.BUDGET_START) or time.time())
    if budget_spent(started, time.time(), hpo.timeout_s):
        return TIMEOUT
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if hpo.patience_trials is None or (searching and not any(stage_of(t) != CONFIRM for t in waiting)):
        return None
    values = [r.value for r in study_runs(study) if r.stage != CONFIRM]
    start = int(study.user_attrs.get(attrs.PATIENCE_FROM) or 0)
    return PLATEAU if plateaued(values, hpo.patience_trials, hpo.min_improvement, start) else None


def apply_stopping(study: optuna.Study, config: Config) -> None:
    """Close the waiting slots a stopping rule holds back (all of them for a spent budget, the search's for
    a plateau), each as skipped with the reason, and record why the study stopped. Runs under the claim
    guard."""
    reason = stop_reason(study, config)
    if reason is None:
        return
    if study.user_attrs.get(attrs.STOPPED) != reason:
        study.set_user_attr(attrs.STOPPED, reason)
        why = describe(reason, config.hpo)
        log.warning("the study claims no more %strials: %s", "search " if reason == PLATEAU else "", why)
    while True:
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if not waiting or (reason == PLATEAU and stage_of(min(waiting, key=lambda t: t.number)) == CONFIRM):
            return
        trial = ask(study)  # the lowest waiting number: closed unrun
        trial.set_user_attr(attrs.SKIPPED, reason)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def reopen_skipped(study: optuna.Study, config: Config, new_budget: bool, more_trials: bool = False) -> int:
    """On a resume: a new time budget starts now when ``new_budget``, and the patience counts anew from here
    when the study is given ``more_trials``; if no stopping rule holds any more (a larger budget or
    patience), the slots closed as skipped are queued again with their slot. Returns how many."""
    if new_budget:
        study.set_user_attr(attrs.BUDGET_START, time.time())
    if more_trials:
        study.set_user_attr(attrs.PATIENCE_FROM, sum(1 for r in study_runs(study) if r.stage != CONFIRM))
    if study.user_attrs.get(attrs.STOPPED) is None:
        return 0
    skipped = [t for t in study.get_trials(deepcopy=False) if attrs.SKIPPED in t.user_attrs]
    held = {t.user_attrs.get(attrs.SLOT) for t in study.get_trials(deepcopy=False) if t.number not in uncounted(study)}
    if stop_reason(study, config, searching=False) is not None:
        return 0
    reopened = 0
    for trial in skipped:
        if trial.user_attrs.get(attrs.SLOT) not in held:
            keep = {k: v for k, v in trial.user_attrs.items() if k != attrs.SKIPPED}
            study.enqueue_trial(trial.params, user_attrs=keep)
            held.add(trial.user_attrs.get(attrs.SLOT))
            reopened += 1
    study.set_user_attr(attrs.STOPPED, None)
    return reopened


def queue_confirmation(study: optuna.Study, config: Config) -> bool:
    """Once the search is over (no trial waiting, running or stopped resumable), the confirmation trials:
    for each of the ``hpo.confirm.top_k`` best distinct configurations, one trial per confirmation seed,
    in slots after the search's. Idempotent (a slot already queued is not queued again); True when it
    queued trials. Runs under the claim guard."""
    hpo = config.hpo
    if not hpo.confirm.top_k or study.user_attrs.get(attrs.CONFIRM_QUEUED) is not None:
        return False
    if study.get_trials(deepcopy=False, states=LIVE) or stopped_resumable(study):
        return False
    if study.user_attrs.get(attrs.STOPPED) == TIMEOUT:  # no trial is claimed once the budget is spent
        return False
    chosen = top_configurations(study_runs(study), hpo.confirm.top_k)
    seeds = confirm_seeds(config.seed, hpo.confirm.seeds)
    present = {t.user_attrs.get(attrs.SLOT) for t in study.get_trials(deepcopy=False) if stage_of(t) == CONFIRM}
    for group, run in enumerate(chosen):
        for j, seed in enumerate(seeds):
            slot = hpo.search_slots + group * len(seeds) + j
            if slot not in present:
                what = {attrs.STAGE: CONFIRM, attrs.PARAMS: dict(run.params), attrs.SEED: seed}
                which = {attrs.SLOT: slot, attrs.CONFIRM_GROUP: group, attrs.CONFIRM_OF: run.number}
                study.enqueue_trial({}, user_attrs=which | what)
    study.set_user_attr(attrs.CONFIRM_QUEUED, len(chosen) * len(seeds))
    if len(chosen) < hpo.confirm.top_k:
        log.warning("confirmation: only %d distinct configuration(s) completed; those are confirmed", len(chosen))
    log.info(
        "confirmation: the %d best configuration(s) (trials %s) train again with seeds %s",
        len(chosen),
        [r.position for r in chosen],
        seeds,
    )
    return bool(chosen)


def confirmation_may_follow(study: optuna.Study, config: Config) -> bool:
    """Confirmation is on and not queued yet while other workers still run search trials."""
    if not config.hpo.confirm.top_k or study.user_attrs.get(attrs.CONFIRM_QUEUED) is not None:
        return False
    if study.user_attrs.get(attrs.STOPPED) == TIMEOUT:
        return False
    return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


def stopped_resumable(study: optuna.Study) -> bool:
    """A counted trial stopped with its checkpoints kept (a full disk): ``resume`` continues it."""
    return any(
        t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get(attrs.RESUMABLE) for _, t in counted_trials(study)
    )


def stage_of(trial: optuna.trial.FrozenTrial) -> str:
    return str(trial.user_attrs.get(attrs.STAGE, SEARCH))


def expected_trials(study: optuna.Study, hpo: HpoConfig) -> int:
    """The counted trials the study runs in all: its baseline and search slots, and the confirmation trials
    it queued (``hpo.confirm``'s plan until the search is over, none once the time budget stopped it),
    less the slots a stopping rule closed."""
    queued = study.user_attrs.get(attrs.CONFIRM_QUEUED)
    stopped = study.user_attrs.get(attrs.STOPPED)
    confirm = hpo.planned_trials - hpo.search_slots if queued is None else int(queued)
    if queued is None and stopped == TIMEOUT:
        confirm = 0
    trials = study.get_trials(deepcopy=False)
    skip = uncounted(study)
    held = {t.user_attrs.get(attrs.SLOT) for t in trials if t.number not in skip}
    closed = {t.user_attrs.get(attrs.SLOT) for t in trials if attrs.SKIPPED in t.user_attrs} - held
    return hpo.search_slots + confirm - len(closed)


def claim_slot(study: optuna.Study) -> optuna.Trial | None:
    """Claim the next waiting trial (Optuna hands them out in number order, each claim atomic in the
    storage; ``queue_behind_continuations`` puts continuations first). None when none is waiting. A
    worker that asks just after another took the last waiting trial gets a new trial from Optuna: it is
    marked surplus, closed, and does not count."""
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        return None
    trial = ask(study)
    if attrs.RESUME_OF in trial.user_attrs or (attrs.SLOT in trial.user_attrs and not _slot_taken(study, trial)):
        return trial
    trial.set_user_attr(attrs.SURPLUS, True)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return claim_slot(study)


def _slot_taken(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Another trial holds this trial's slot (two machines on a database server queued it at once)."""
    slot, skip = trial.user_attrs[attrs.SLOT], uncounted(study)
    return any(
        t.number < trial.number and t.user_attrs.get(attrs.SLOT) == slot and attrs.RESUME_OF not in t.user_attrs
        for t in study.get_trials(deepcopy=False)
        if t.number not in skip
    )


def uncounted(study: optuna.Study) -> set[int]:
    """Trials that do not count towards ``hpo.n_trials``: interrupted ones that were re-queued (their
    continuation counts), surplus ones (see ``claim_slot``) and slots a stopping rule closed unrun."""
    requeued = set(study.user_attrs.get(attrs.REQUEUED_TRIALS, []))
    closed = (attrs.SURPLUS, attrs.SKIPPED)
    return requeued | {t.number for t in study.get_trials(deepcopy=False) if any(t.user_attrs.get(k) for k in closed)}


def queue_behind_continuations(study: optuna.Study) -> None:
    """Optuna hands out waiting trials in number order, and a continuation enqueued now is numbered after
    the slots still waiting. An uninterrupted run would have finished the interrupted trial before those
    slots started (and TPE reads the finished trials), so the slots ahead of the first waiting
    continuation are claimed, closed as re-queued, and queued again behind it with their slot. Run by the
    one process that re-queues (under the study lock, or at a worker's start)."""
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    continuations = [t.number for t in waiting if attrs.RESUME_OF in t.user_attrs]
    ahead = [t for t in waiting if continuations and t.number < min(continuations)]
    moved = []
    for frozen in ahead:  # the lowest waiting numbers: asks claim exactly these, in order
        trial = ask(study)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        moved.append(trial.number)
        study.enqueue_trial({}, user_attrs=trial.user_attrs)
        if trial.number != frozen.number:  # another worker took it meanwhile: leave the rest as they are
            break
    if moved:
        study.set_user_attr(
            attrs.REQUEUED_TRIALS, sorted(set(study.user_attrs.get(attrs.REQUEUED_TRIALS, [])) | set(moved))
        )
        log.info("trial slot(s) %s queued again behind the interrupted trial(s) that continue first", moved)
