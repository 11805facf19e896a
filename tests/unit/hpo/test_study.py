import time

import optuna
import pytest

from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.space import suggest
from redsm5_hpo.hpo.study import (
    claim_slot,
    counted_trials,
    create_study,
    enqueue_slots,
    expected_trials,
    queue_behind_continuations,
    reopen_skipped,
    run_trials,
    study_history,
    uncounted,
)


def test_suggest_respects_ranges_and_choices() -> None:
    space = {
        "train": {
            "lr_head": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "epochs": {"type": "int", "low": 1, "high": 3},
        },
        "model": {"head_hidden": {"type": "categorical", "choices": [16, 32]}},
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        values = suggest(study.ask(), space)
        assert 1e-4 <= values["train.lr_head"] <= 1e-2
        assert values["train.epochs"] in (1, 2, 3)
        assert values["model.head_hidden"] in (16, 32)


def test_failed_trial_is_recorded_and_study_goes_on(tiny_config, tmp_path) -> None:
    config = apply_overrides(tiny_config, {"hpo.n_trials": 2})
    study = create_study(config, "s", f"sqlite:///{tmp_path / 'optuna.db'}")
    seen = []

    def train_trial(spec, trial):
        seen.append((spec.number, spec.config.train.lr_head == spec.params["train.lr_head"]))
        if spec.number == 0:
            trial.set_user_attr("fail_reason", "boom")
            raise RuntimeError("boom")
        return 0.5

    run_trials(study, config, train_trial)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert study.trials[0].user_attrs["fail_reason"] == "boom"
    assert all(applied for _, applied in seen)


def test_sampler_is_seeded(tiny_config, tmp_path) -> None:
    params = []
    for name in ("a", "b"):
        study = create_study(tiny_config, name, f"sqlite:///{tmp_path / (name + '.db')}")
        run_trials(study, tiny_config, lambda spec, trial: 0.1)
        params.append([t.params for t in study.trials])
    assert len(params[0]) == tiny_config.hpo.n_trials and params[0] == params[1]


def test_a_loss_objective_makes_a_minimizing_study_and_a_resume_must_agree(tiny_config, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    loss = apply_overrides(tiny_config, {"train.optimization_metric": "val_loss", "hpo.n_trials": 3})
    study = create_study(loss, "s", storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    values = iter([0.7, 0.2, 0.5])
    run_trials(study, loss, lambda spec, trial: next(values))
    assert study.best_value == 0.2
    with pytest.raises(StudyError, match=r"created to minimize its objective, but train\.optimization_metric="):
        create_study(tiny_config, "s", storage)  # val_criteria_macro_f1 is maximized


@pytest.mark.parametrize("sampler", ["tpe", "random", "gp", "cmaes", "qmc"])
def test_the_sampler_suggests_the_same_after_a_restart_in_a_fresh_process(tiny_config, tmp_path, sampler) -> None:
    """Each trial's draws come from (seed, slot) alone: a sampler built anew half-way (a resumed study in a
    fresh process) continues exactly as one that ran throughout, past the 10 random startup trials of TPE,
    GP and CMA-ES (QMC walks one sequence kept in the storage)."""
    config = apply_overrides(tiny_config, {"hpo.n_trials": 14, "hpo.sampler": sampler})

    def objective(spec, trial):
        return -abs(float(spec.params["train.lr_head"]) - 3e-3)

    whole = create_study(config, "whole", f"sqlite:///{tmp_path / 'whole.db'}")
    run_trials(whole, config, objective)
    storage = f"sqlite:///{tmp_path / 'halves.db'}"
    first_half = create_study(config, "halves", storage)
    run_trials(first_half, config, objective, stop=lambda: len(first_half.trials) > 0 and _done(first_half) >= 7)
    run_trials(create_study(config, "halves", storage), config, objective)  # a new sampler object
    halves = optuna.load_study(study_name="halves", storage=storage)
    assert [t.params for t in halves.trials] == [t.params for t in whole.trials]
    assert len({t.params["train.lr_head"] for t in whole.trials}) == 14


def _done(study) -> int:
    return sum(t.state.is_finished() for t in study.trials)


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

    run_trials(study, config, slow)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    skipped = [t for t in study.trials if t.user_attrs.get(attrs.SKIPPED)]
    assert 1 <= len(done) < 6 and len(done) + len(skipped) == 6
    assert study.user_attrs[attrs.STOPPED] == "timeout"
    assert expected_trials(study, config.hpo) == len(done) == len(counted_trials(study))
    assert reopen_skipped(study, config, new_budget=False) == 0  # the old budget is still spent
    assert reopen_skipped(study, apply_overrides(config, {"hpo.timeout_s": 60.0}), new_budget=True) == len(skipped)
    run_trials(study, apply_overrides(config, {"hpo.timeout_s": 60.0}), lambda spec, trial: 0.5)
    assert [index for index, _ in counted_trials(study)] == [1, 2, 3, 4, 5, 6]  # every slot ran, in order


def test_a_plateau_stops_the_search_after_patience_trials_without_improvement(tiny_config, tmp_path) -> None:
    config = apply_overrides(tiny_config, {"hpo.n_trials": 8, "hpo.patience_trials": 2, "hpo.min_improvement": 0.05})
    study = create_study(config, "s", f"sqlite:///{tmp_path / 'optuna.db'}")
    values = iter([0.5, 0.7, 0.72, 0.74, 0.9, 0.9, 0.9, 0.9])
    run_trials(study, config, lambda spec, trial: next(values))
    assert [t.value for _, t in counted_trials(study)] == [0.5, 0.7, 0.72, 0.74]  # 0.72, 0.74: within 0.05 of 0.7
    assert study.user_attrs[attrs.STOPPED] == "plateau"
    assert len([t for t in study.trials if t.user_attrs.get(attrs.SKIPPED)]) == 4
