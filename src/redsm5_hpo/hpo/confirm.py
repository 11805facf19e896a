"""The baseline trial and the confirmation of the search's best configurations over seeds: pure decisions.

A study's trials come in three stages. The **baseline** (``hpo.baseline_trial``) runs the configuration's
own values, unsampled, as the first trial. The **search** trials are sampled. After them, with
``hpo.confirm.top_k`` > 0, the best ``top_k`` distinct configurations are trained again with the same
``hpo.confirm.seeds`` training seeds each: the **confirmation** trials. The configuration with the best
mean validation objective over its seeds wins (ties: the one that ranked higher in the search), and the
study's answer is the winner's best seed. Baseline and confirmation trials have their parameters set, not
sampled, so the sampler learns nothing from them.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BASELINE, SEARCH, CONFIRM = "baseline", "search", "confirm"
CONFIRM_SEED_KEY = 0xC0F1
"""Mixed into the seed sequence so the confirmation seeds are not the study's other seeds."""


def confirm_seeds(seed: int, n: int) -> list[int]:
    """The ``n`` training seeds of every confirmed configuration: derived from ``seed`` by numpy's
    ``SeedSequence``, fixed for a study, distinct."""
    return [int(s) for s in np.random.SeedSequence([seed, CONFIRM_SEED_KEY]).generate_state(n)]


@dataclass(frozen=True)
class Run:
    """One counted trial as the confirmation sees it."""

    number: int
    position: int
    """Its logical position in the study (ties go to the earlier one)."""
    stage: str
    params: Mapping[str, Any]
    value: float | None
    """The objective of a completed trial turned so that higher is better; None otherwise."""
    group: int | None = None
    """A confirmation trial's configuration (its rank among the confirmed ones)."""
    seed: int | None = None


def top_configurations(runs: Sequence[Run], k: int) -> list[Run]:
    """The best ``k`` distinct configurations of the baseline and search trials, best first: for each
    parameter set its best completed trial; ties go to the earlier position."""
    candidates = [r for r in runs if r.stage != CONFIRM and r.value is not None]
    chosen: list[Run] = []
    for run in sorted(candidates, key=lambda r: (-(r.value or 0.0), r.position)):
        if all(dict(run.params) != dict(c.params) for c in chosen):
            chosen.append(run)
    return chosen[:k]


@dataclass(frozen=True)
class Group:
    """A confirmed configuration and its confirmation trials."""

    index: int
    runs: tuple[Run, ...]

    @property
    def values(self) -> list[float]:
        return [r.value for r in self.runs if r.value is not None]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def best(self) -> Run | None:
        """Its best completed seed (ties: the earlier position)."""
        done = [r for r in self.runs if r.value is not None]
        return max(done, key=lambda r: (r.value or 0.0, -r.position)) if done else None


def groups(runs: Sequence[Run]) -> list[Group]:
    """The confirmation trials by configuration, in rank order."""
    confirm = [r for r in runs if r.stage == CONFIRM and r.group is not None]
    indices = sorted({r.group for r in confirm if r.group is not None})
    return [Group(i, tuple(sorted((r for r in confirm if r.group == i), key=lambda r: r.position))) for i in indices]


def winner(confirmed: Sequence[Group]) -> Group | None:
    """The configuration with the best mean validation objective over its completed seeds; ties go to the
    one that ranked higher in the search."""
    scored = [g for g in confirmed if g.mean is not None]
    return max(scored, key=lambda g: (g.mean or 0.0, -g.index)) if scored else None


def search_best(runs: Sequence[Run]) -> Run | None:
    """The best completed baseline or search trial; ties go to the earlier position."""
    top = top_configurations(runs, 1)
    return top[0] if top else None


def answer(runs: Sequence[Run], confirmation_done: bool) -> Run | None:
    """The trial whose checkpoints answer the study: the winner's best seed once the confirmation is done
    (and a confirmation trial completed), else the search's best trial."""
    if confirmation_done and (best := winner(groups(runs))) is not None:
        return best.best
    return search_best(runs)


def kept(runs: Sequence[Run], confirmation_done: bool) -> set[int]:
    """The trials whose checkpoints a study keeps: its answer (``answer``); while the confirmation runs,
    also each confirmed configuration's best seed so far (any of them may still win)."""
    keep = {r.number for r in [answer(runs, confirmation_done)] if r is not None}
    if not confirmation_done:
        keep |= {g.best.number for g in groups(runs) if g.best is not None}
    return keep


def spread(values: Sequence[float], confidence: float) -> dict[str, Any]:
    """Mean, standard deviation (n - 1) and the Student-t interval of the mean of per-seed values."""
    from scipy import stats

    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    if len(values) < 2 or std == 0.0:
        return {"mean": mean, "std": std, "interval": [mean, mean]}
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=std / len(values) ** 0.5)
    return {"mean": mean, "std": std, "interval": [float(low), float(high)]}


def own_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A baseline's parameters as the search space spells them (a list of augmentation methods is one
    ``+``-joined choice, ``none`` when empty)."""
    return {k: ("+".join(v) or "none") if isinstance(v, list | tuple) else v for k, v in values.items()}
