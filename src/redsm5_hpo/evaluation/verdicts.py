"""Warnings a study's answer deserves: a search with no signal, a test score below a constant baseline.

Pure: from the trials' values and the report's numbers to one-line warnings (the report keeps them, the
console prints them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redsm5_hpo.evaluation.metrics import Direction

BASELINE_NAMES = {"all_positive_macro_f1": "all-positive", "majority_macro_f1": "majority"}
"""The report's constant baselines (test macro-F1 of a predictor that ignores the post)."""


def no_signal(values: Sequence[float], direction: Direction, metric: str) -> str | None:
    """A warning when the completed trials' objective ``values`` cannot have told the configurations apart:
    every one at the metric's worst value (0 for a score), or two or more trials all equal (the winner
    then comes from the tie rule, not from the data)."""
    if not values:
        return None
    if direction == "maximize" and max(values) <= 0.0:
        return (
            f"the search had no signal: every trial scored {metric}={max(values):.4g}, the worst possible value "
            "(train longer, e.g. more train.epochs, or check the data)"
        )
    if len(values) > 1 and len(set(values)) == 1:
        return (
            f"the search had no signal: all {len(values)} trials scored {metric}={values[0]:.4g}, so the best "
            "trial was picked by the tie rule"
        )
    return None


def below_baselines(test_metrics: Mapping[str, float], baselines: Mapping[str, float]) -> list[str]:
    """One warning per constant baseline whose test macro-F1 is above the model's."""
    score = test_metrics.get("test_criteria_macro_f1")
    if score is None:
        return []
    return [
        f"test macro-F1 {score:.3f} is below the {BASELINE_NAMES.get(name, name)} baseline ({value:.3f}): the "
        "model does worse than a constant prediction"
        for name, value in baselines.items()
        if value > score
    ]


def result_warnings(
    values: Sequence[float],
    direction: Direction,
    metric: str,
    test_metrics: Mapping[str, float],
    baselines: Mapping[str, float],
) -> list[str]:
    found = no_signal(values, direction, metric)
    return [*([found] if found else []), *below_baselines(test_metrics, baselines)]
