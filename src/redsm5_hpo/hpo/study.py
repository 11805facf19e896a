"""The Optuna study: seeded TPE, sequential trials, failures recorded and skipped.

The study knows nothing about models: it asks ``train_trial`` (given by the caller) to train
one configuration and return the value of the optimization metric.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.config.schema import Config
from redsm5_hpo.hpo.space import suggest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialSpec:
    number: int
    """0-based position in the study."""
    total: int
    config: Config
    params: dict[str, object]


TrainTrial = Callable[[TrialSpec, optuna.Trial], float]


def default_storage(study_dir: Path) -> str:
    return f"sqlite:///{Path(study_dir).resolve() / 'optuna.db'}"


def create_study(config: Config, study_name: str, storage: str) -> optuna.Study:
    """A maximizing study with a TPE sampler seeded from ``config.seed``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        direction="maximize",
        load_if_exists=True,
    )


def run_trials(
    study: optuna.Study,
    config: Config,
    train_trial: TrainTrial,
    on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> None:
    """Run ``config.hpo.n_trials`` trials one at a time; a failing trial is recorded and the study goes on."""
    total = config.hpo.n_trials

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, config.hpo.search_space)
        spec = TrialSpec(trial.number, total, apply_overrides(config, params), params)
        value = train_trial(spec, trial)
        if not math.isfinite(value):
            raise ValueError(f"trial {trial.number} returned a non-finite objective {value}")
        return value

    callbacks = [lambda s, t: on_trial_end(s, t)] if on_trial_end else []
    study.optimize(objective, n_trials=total, catch=(Exception,), callbacks=callbacks, gc_after_trial=True)
