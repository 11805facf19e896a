"""When a study stops claiming trials before its plan is done: a time budget, a plateau. Pure decisions.

``hpo.timeout_s``: no trial is claimed once the study has run that long, counted from the budget's start
recorded in the study's storage (so every worker and machine reads the same clock). ``hpo.patience_trials``
(with ``hpo.min_improvement``): the search stops once that many counted trials in a row did not improve
the best value by more than the margin. Running trials always finish; the slots still waiting are closed
as skipped, and ``resume`` with a larger budget or patience opens them again.
"""

from __future__ import annotations

from collections.abc import Sequence

from redsm5_hpo.config.schema import HpoConfig

TIMEOUT, PLATEAU = "timeout", "plateau"


def budget_spent(started_at: float, now: float, timeout_s: float | None) -> bool:
    """``hpo.timeout_s`` seconds have passed since the budget started (never without a budget)."""
    return timeout_s is not None and now - started_at >= timeout_s


def trials_since_improvement(values: Sequence[float | None], min_improvement: float, start: int = 0) -> int:
    """How many trials, counted from the end, came after the last one that improved the best by more than
    ``min_improvement``, counting from trial ``start`` on (a study given more trials counts its patience
    anew, against the best so far). ``values`` are oriented (higher is better) in index order; None for a
    trial that did not complete (it counts, without improving)."""
    best: float | None = None
    since = 0
    for value in values:
        if value is not None and (best is None or value > best + min_improvement):
            best, since = value, 0
        else:
            since += 1
    return min(since if best is not None else len(values), max(0, len(values) - start))


def plateaued(values: Sequence[float | None], patience: int | None, min_improvement: float, start: int = 0) -> bool:
    """``patience`` counted trials in a row without an improvement above the margin (never without one)."""
    return patience is not None and trials_since_improvement(values, min_improvement, start) >= patience


def describe(reason: str, hpo: HpoConfig) -> str:
    """The report's, the console's and ``status``'s words for why the study stopped."""
    if reason == TIMEOUT:
        return f"its time budget (hpo.timeout_s={hpo.timeout_s:g}) was spent"
    return (
        f"the best value did not improve by more than hpo.min_improvement={hpo.min_improvement:g} in "
        f"hpo.patience_trials={hpo.patience_trials} trials"
    )
