"""The evaluation package's configuration checks (collected by ``config.validation``)."""

from __future__ import annotations

from redsm5_hpo.config.schema import Config
from redsm5_hpo.evaluation.metrics import validation_metric_names


def check_config(config: Config) -> list[str]:
    """The optimization metric must be one the loop logs; the intervals' settings must make sense."""
    problems = []
    known = validation_metric_names()
    metric = config.train.optimization_metric
    if metric not in known:
        problems.append(
            f"train.optimization_metric: {metric!r} is not a metric the loop logs; choose one of "
            f"{', '.join(sorted(known))}"
        )
    evaluation = config.evaluation
    if evaluation.bootstrap_samples < 0 or 0 < evaluation.bootstrap_samples < 100:
        problems.append(
            f"evaluation.bootstrap_samples: {evaluation.bootstrap_samples}; use 0 (no intervals) or at least 100 "
            "(1000 is the default)"
        )
    if not 0 < evaluation.confidence < 1:
        problems.append(f"evaluation.confidence: {evaluation.confidence}; a level in (0, 1), e.g. 0.95")
    return problems
