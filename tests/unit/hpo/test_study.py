import optuna
import pytest

from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.space import suggest
from redsm5_hpo.hpo.study import create_study, run_trials
from tests.helpers.trial_loop import Trains


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

    worker = Trains(train_trial)
    assert run_trials(study, config, worker) == 2
    # the loop calls down into its observer and returns: each trial claimed, trained, then its outcome stored
    assert worker.heard == [(step, n) for n in (0, 1) for step in ("claimed", "train", "finished")]
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert study.trials[0].user_attrs["fail_reason"] == "boom"
    assert all(applied for _, applied in seen)


def test_sampler_is_seeded(tiny_config, tmp_path) -> None:
    params = []
    for name in ("a", "b"):
        study = create_study(tiny_config, name, f"sqlite:///{tmp_path / (name + '.db')}")
        run_trials(study, tiny_config, Trains(lambda spec, trial: 0.1))
        params.append([t.params for t in study.trials])
    assert len(params[0]) == tiny_config.hpo.n_trials and params[0] == params[1]


def test_a_loss_objective_makes_a_minimizing_study_and_a_resume_must_agree(tiny_config, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    loss = apply_overrides(tiny_config, {"train.optimization_metric": "val_loss", "hpo.n_trials": 3})
    study = create_study(loss, "s", storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    values = iter([0.7, 0.2, 0.5])
    run_trials(study, loss, Trains(lambda spec, trial: next(values)))
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
    run_trials(whole, config, Trains(objective))
    storage = f"sqlite:///{tmp_path / 'halves.db'}"
    first_half = create_study(config, "halves", storage)
    half_done = Trains(objective, stop=lambda: len(first_half.trials) > 0 and _done(first_half) >= 7)
    run_trials(first_half, config, half_done)
    run_trials(create_study(config, "halves", storage), config, Trains(objective))  # a new sampler object
    halves = optuna.load_study(study_name="halves", storage=storage)
    assert [t.params for t in halves.trials] == [t.params for t in whole.trials]
    assert len({t.params["train.lr_head"] for t in whole.trials}) == 14


def _done(study) -> int:
    return sum(t.state.is_finished() for t in study.trials)
