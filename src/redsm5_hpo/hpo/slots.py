"""The study's ledger of trial slots: queued (baseline, search, warm-started, confirmation), claimed one at a
time, closed by a stopping rule and reopened, and what the study owes.

Every slot is an Optuna trial waiting in the storage with its slot number (``attrs.SLOT``); workers on any
machine pop them in number order, so exactly the planned trials run however many workers there are."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import optuna

from redsm5_hpo.config.resume import value_at
from redsm5_hpo.config.schema import Config, HpoConfig
from redsm5_hpo.config.search_space import flatten_space, is_active, suggestion_order
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.confirm import BASELINE, CONFIRM, confirm_seeds, own_values, top_configurations
from redsm5_hpo.hpo.stopping import PLATEAU, TIMEOUT, budget_spent, describe, plateaued
from redsm5_hpo.hpo.storage import ask
from redsm5_hpo.hpo.trials import LIVE, stage_of, stopped_resumable, study_runs, uncounted

log = logging.getLogger(__name__)


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
