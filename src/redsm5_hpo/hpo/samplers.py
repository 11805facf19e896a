"""Optuna's samplers for ``hpo.sampler``, reseeded per trial so a resumed study suggests what an uninterrupted
one would (``ResumableSampler``), and the one warning for the parameters a sampler draws independently."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from redsm5_hpo.config.search_space import flatten_space
from redsm5_hpo.hpo import attrs

Uncounted = Callable[[optuna.Study], set[int]]


def per_trial_sampler(kind: str, seed: int, study_seed: int) -> optuna.samplers.BaseSampler:
    """One trial's sampler of ``hpo.sampler``, seeded with ``seed``. QMC walks one scrambled sequence
    indexed by the trial (kept in the storage), so it keeps the study's own seed; the others are reseeded
    per trial. Parameters a sampler cannot model jointly are drawn independently, as Optuna documents;
    ``sampler_warning`` says so once instead of Optuna's warning on every trial."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if kind == "qmc":
        with warnings.catch_warnings():  # Optuna marks QMC experimental: expected, not the user's concern
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=study_seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


class ResumableSampler(optuna.samplers.BaseSampler):
    """``hpo.sampler`` (TPE by default) whose random state for each trial is a function of (seed, the trial's
    position among the trials that count), so a study resumed in a fresh process suggests what the
    uninterrupted study would have suggested, whichever worker runs the trial.

    Public API only: each trial is sampled by its own Optuna sampler seeded for it. Optuna's samplers keep
    nothing between trials but their random state (what they learn, they read from the study's trials and
    their attributes in the storage each time), so this is the sampler with a reseed before every trial."""

    def __init__(self, seed: int, kind: str = "tpe", uncounted: Uncounted = lambda study: set()):
        self.seed = seed
        self.kind = kind
        self.uncounted = uncounted
        """The study's trials that do not count (``hpo.study.uncounted``): a trial without a slot is placed
        after the ones that do."""
        self._per_trial: dict[int, optuna.samplers.BaseSampler] = {}

    def trial_seed(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> int:
        position = trial.user_attrs.get(attrs.SLOT)
        if position is None:  # a continuation: its params are fixed; any position keeps it reproducible
            position = trial.number - sum(1 for n in self.uncounted(study) if n < trial.number)
        return (self.seed * 1_000_003 + int(position)) % 2**32

    def _sampler(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
        if trial.number not in self._per_trial:
            self._per_trial[trial.number] = per_trial_sampler(self.kind, self.trial_seed(study, trial), self.seed)
        return self._per_trial[trial.number]

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._per_trial.pop(trial.number, None)  # the trial's draws start from its own seed
        self._sampler(study, trial).before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._sampler(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return self._sampler(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self._sampler(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        sampler = self._per_trial.pop(trial.number, None)
        if sampler is not None:
            sampler.after_trial(study, trial, state, values)


JOINT_KINDS = {"cmaes": ("float", "int"), "qmc": ("float", "int")}
"""The parameter types a sampler models jointly; any other is drawn independently (Optuna's fallback)."""


def sampler_warning(kind: str, search_space: dict[str, Any]) -> str | None:
    """One line for the parameters ``hpo.sampler`` draws independently (CMA-ES and QMC model numbers only,
    and every sampler draws a conditional parameter on its own), None when there are none."""
    flat = flatten_space(search_space)
    joint = JOINT_KINDS.get(kind)
    apart = sorted(n for n, spec in flat.items() if spec.get("when") or (joint and spec["type"] not in joint))
    if kind in ("tpe", "random") or not apart:
        return None
    return (
        f"hpo.sampler={kind} draws {', '.join(apart)} independently (random), as Optuna does for parameters it "
        "cannot model jointly (categorical or conditional ones)"
    )
