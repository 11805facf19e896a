"""The ledger of trial slots: continuations first, surplus claims closed, slots a stopping rule closed and
reopened."""

import time

import optuna

from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.slots import claim_slot, enqueue_slots, expected_trials, queue_behind_continuations, reopen_skipped
from redsm5_hpo.hpo.study import create_study, run_trials
from redsm5_hpo.hpo.trials import counted_trials, study_history, uncounted
from tests.helpers.trial_loop import Trains


def test_a_continuation_runs_before_the_slots_that_were_still_waiting(tiny_config, tmp_path) -> None:
    config = apply_overrides(tiny_config, {"hpo.n_trials": 4})
    study = create_study(config, "s", f"sqlite:///{tmp_path / 'optuna.db'}")
    enqueue_slots(study, config)
    first = claim_slot(study)  # slot 0 starts, then its process dies
    study.tell(first.number, state=optuna.trial.TrialState.FAIL)
    study.set_user_attr(attrs.REQUEUED_TRIALS, [first.number])
    study.enqueue_trial({}, user_attrs={attrs.RESUME_OF: first.number, attrs.SLOT: 0})
    queue_behind_continuations(study)
    order = []
    while (trial := claim_slot(study)) is not None:
        order.append(trial.user_attrs[attrs.SLOT])
        study.tell(trial, 0.5)
    assert order == [0, 1, 2, 3]
    counted = [t for t in study.trials if t.number not in uncounted(study)]
    assert sorted(t.user_attrs[attrs.SLOT] for t in counted) == [0, 1, 2, 3]
    # the continuation and the slots queued again behind it have new numbers; the index stays 1..n
    assert [(k, t.number) for k, t in counted_trials(study)] == [(1, 4), (2, 5), (3, 6), (4, 7)]
    assert [p.trial for p in study_history(study)] == [1, 2, 3, 4]


def test_a_trial_that_is_no_slot_is_closed_as_surplus_and_never_counts(tiny_config, tmp_path) -> None:
    """What a worker gets from Optuna when another worker claimed the last slot between its check and its
    ask (a trial Optuna creates, with no slot): it is closed, marked surplus, and the worker moves on."""
    study = create_study(tiny_config, "s", f"sqlite:///{tmp_path / 'optuna.db'}")
    study.enqueue_trial({})  # stands in for the trial Optuna creates: no slot, no continuation
    study.enqueue_trial({}, user_attrs={attrs.SLOT: 0})
    trial = claim_slot(study)
    assert trial is not None and trial.user_attrs[attrs.SLOT] == 0
    (surplus,) = [t for t in study.trials if t.number != trial.number]
    assert surplus.state == optuna.trial.TrialState.FAIL and surplus.user_attrs["surplus"] is True
    assert uncounted(study) == {surplus.number}
    study.tell(trial, 0.1)
    assert claim_slot(study) is None and len(study.trials) == 2  # nothing waiting: no trial is created


def test_a_spent_budget_closes_the_waiting_slots_and_a_new_one_reopens_them(tiny_config, tmp_path) -> None:
    config = apply_overrides(tiny_config, {"hpo.n_trials": 6, "hpo.timeout_s": 0.5})
    study = create_study(config, "s", f"sqlite:///{tmp_path / 'optuna.db'}")

    def slow(spec, trial):
        time.sleep(0.3)
        return 0.5

    run_trials(study, config, Trains(slow))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    skipped = [t for t in study.trials if t.user_attrs.get(attrs.SKIPPED)]
    assert 1 <= len(done) < 6 and len(done) + len(skipped) == 6
    assert study.user_attrs[attrs.STOPPED] == "timeout"
    assert expected_trials(study, config.hpo) == len(done) == len(counted_trials(study))
    assert reopen_skipped(study, config, new_budget=False) == 0  # the old budget is still spent
    assert reopen_skipped(study, apply_overrides(config, {"hpo.timeout_s": 60.0}), new_budget=True) == len(skipped)
    run_trials(study, apply_overrides(config, {"hpo.timeout_s": 60.0}), Trains(lambda spec, trial: 0.5))
    assert [index for index, _ in counted_trials(study)] == [1, 2, 3, 4, 5, 6]  # every slot ran, in order


def test_a_plateau_stops_the_search_after_patience_trials_without_improvement(tiny_config, tmp_path) -> None:
    config = apply_overrides(tiny_config, {"hpo.n_trials": 8, "hpo.patience_trials": 2, "hpo.min_improvement": 0.05})
    study = create_study(config, "s", f"sqlite:///{tmp_path / 'optuna.db'}")
    values = iter([0.5, 0.7, 0.72, 0.74, 0.9, 0.9, 0.9, 0.9])
    run_trials(study, config, Trains(lambda spec, trial: next(values)))
    assert [t.value for _, t in counted_trials(study)] == [0.5, 0.7, 0.72, 0.74]  # 0.72, 0.74: within 0.05 of 0.7
    assert study.user_attrs[attrs.STOPPED] == "plateau"
    assert len([t for t in study.trials if t.user_attrs.get(attrs.SKIPPED)]) == 4
