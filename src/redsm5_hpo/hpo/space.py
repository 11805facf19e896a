"""Sample one trial's config overrides from the declared search space."""

from __future__ import annotations

from typing import Any

import optuna

from redsm5_hpo.config.search_space import flatten_space


def suggest(trial: optuna.Trial, search_space: dict[str, Any]) -> dict[str, Any]:
    """``{"train.lr_head": 0.002, ...}``: one value per parameter of the space, drawn in name order so
    the same seed gives the same values however the space's mapping is ordered (YAML, JSON, overrides)."""
    values: dict[str, Any] = {}
    for name, spec in sorted(flatten_space(search_space).items()):
        kind = spec["type"]
        if kind == "float":
            values[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        elif kind == "int":
            values[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            values[name] = trial.suggest_categorical(name, list(spec["choices"]))
    return values
