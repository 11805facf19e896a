"""Sample one trial's config overrides from the declared search space."""

from __future__ import annotations

from typing import Any

import optuna

from redsm5_hpo.config.search_space import flatten_space, is_active, suggestion_order


def suggest(trial: optuna.Trial, search_space: dict[str, Any]) -> dict[str, Any]:
    """``{"train.lr_head": 0.002, ...}``: one value per active parameter of the space, drawn in name order
    (each conditional parameter after its parents) so the same seed gives the same values however the
    space's mapping is ordered (YAML, JSON, overrides). A parameter whose ``when`` does not hold is not
    drawn at all: it does not exist in that trial."""
    values: dict[str, Any] = {}
    flat = flatten_space(search_space)
    for name in suggestion_order(flat):
        spec = flat[name]
        if not is_active(spec, values):
            continue
        kind = spec["type"]
        if kind == "float":
            values[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        elif kind == "int":
            values[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            values[name] = trial.suggest_categorical(name, list(spec["choices"]))
    return values
