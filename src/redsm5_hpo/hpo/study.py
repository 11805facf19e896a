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


REQUEUED_ATTR = "requeued_trials"
"""Study user attr: numbers of interrupted trials that were re-queued (they no longer count)."""


class ResumableTPESampler(optuna.samplers.TPESampler):
    """TPE whose random state before each trial is a function of (seed, the trial's position among the
    trials that count), so a study resumed in a fresh process suggests what the uninterrupted study would
    have suggested."""

    def __init__(self, seed: int):
        super().__init__(seed=seed)
        self._base_seed = seed

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        requeued = study.user_attrs.get(REQUEUED_ATTR, [])
        position = trial.number - sum(1 for n in requeued if n < trial.number)
        seed = (self._base_seed * 1_000_003 + position) % 2**32
        self._rng.rng.seed(seed)
        self._random_sampler._rng.rng.seed(seed)
        super().before_trial(study, trial)


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


def create_study(config: Config, study_name: str, storage: str) -> optuna.Study:
    """A maximizing study with a TPE sampler seeded from ``config.seed`` and the configured pruner."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=ResumableTPESampler(seed=config.seed),
        pruner=make_pruner(config),
        direction="maximize",
        load_if_exists=True,
    )


def run_trials(
    study: optuna.Study,
    config: Config,
    train_trial: TrainTrial,
    on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    n_trials: int | None = None,
) -> None:
    """Run ``n_trials`` (default ``config.hpo.n_trials``) new trials one at a time; a failing trial is
    recorded and the study goes on."""
    total = config.hpo.n_trials

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, config.hpo.search_space)
        spec = TrialSpec(trial.number, total, apply_overrides(config, params), params)
        value = train_trial(spec, trial)
        if not math.isfinite(value):
            raise ValueError(f"trial {trial.number} returned a non-finite objective {value}")
        return value

    callbacks = [lambda s, t: on_trial_end(s, t)] if on_trial_end else []
    remaining = total if n_trials is None else n_trials
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, catch=(Exception,), callbacks=callbacks, gc_after_trial=True)
