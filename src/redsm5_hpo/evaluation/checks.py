"""The evaluation package's configuration checks (collected by ``config.validation``)."""

from __future__ import annotations

from redsm5_hpo.config.schema import Config
from redsm5_hpo.evaluation.metrics import validation_metric_names


def check_config(config: Config) -> list[str]:
    """The optimization metric must be one the loop logs."""
    known = validation_metric_names()
    metric = config.train.optimization_metric
    if metric in known:
        return []
    return [
        f"train.optimization_metric: {metric!r} is not a metric the loop logs; choose one of {', '.join(sorted(known))}"
    ]
