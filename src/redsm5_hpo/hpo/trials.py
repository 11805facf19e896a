"""What a study's trials say: which ones count and at which index, the runs the confirmation reads, the
answer (``best_trial``) and the study's progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from redsm5_hpo.evaluation.metrics import Direction, oriented
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.confirm import CONFIRM, SEARCH, Run, answer
from redsm5_hpo.hpo.progress import HistoryPoint, Progress, best_value_history, study_progress

LIVE = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)


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


def uncounted(study: optuna.Study) -> set[int]:
    """Trials that do not count towards ``hpo.n_trials``: interrupted ones that were re-queued (their
    continuation counts), surplus ones (see ``claim_slot``) and slots a stopping rule closed unrun."""
    requeued = set(study.user_attrs.get(attrs.REQUEUED_TRIALS, []))
    closed = (attrs.SURPLUS, attrs.SKIPPED)
    return requeued | {t.number for t in study.get_trials(deepcopy=False) if any(t.user_attrs.get(k) for k in closed)}


def stage_of(trial: optuna.trial.FrozenTrial) -> str:
    return str(trial.user_attrs.get(attrs.STAGE, SEARCH))


def stopped_resumable(study: optuna.Study) -> bool:
    """A counted trial stopped with its checkpoints kept (a full disk): ``resume`` continues it."""
    return any(
        t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get(attrs.RESUMABLE) for _, t in counted_trials(study)
    )


def study_progress_of(study: optuna.Study, total: int, starting: bool, workers: int = 1) -> Progress:
    """Progress over the trials that count (finished, not re-queued); ``starting``: the next one begins."""
    finished = [t for _, t in counted_trials(study)]
    durations = [t.duration.total_seconds() for t in finished if t.duration is not None]
    values = [t.value for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    return study_progress(len(finished) + int(starting), total, durations, values, study_direction(study), workers)
