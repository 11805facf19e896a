"""The search-space section of the config: nested YAML -> flat ``{dotted.field: spec}``."""

from __future__ import annotations

from typing import Any


def flatten_space(space: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Flatten ``{train: {lr_head: {type: float, ...}}}`` to ``{"train.lr_head": {...}}``.

    A mapping with a ``type`` key is a parameter spec; any other mapping is a namespace.
    """
    flat: dict[str, dict[str, Any]] = {}
    for key, value in space.items():
        dotted = f"{prefix}{key}"
        if not isinstance(value, dict):
            raise ValueError(f"{dotted}: expected a parameter spec mapping, got {value!r}")
        if "type" in value:
            flat[dotted] = value
        else:
            flat.update(flatten_space(value, dotted + "."))
    return flat


def parents(spec: dict[str, Any]) -> dict[str, list[Any]]:
    """``when: {train.optimizer: sgd}`` -> ``{"train.optimizer": ["sgd"]}`` (a list means any of them)."""
    when = spec.get("when") or {}
    return {name: list(v) if isinstance(v, list) else [v] for name, v in when.items()}


def suggestion_order(flat: dict[str, dict[str, Any]]) -> list[str]:
    """Parameters in name order, each after the parameters its ``when`` names (ValueError on a cycle)."""
    order: list[str] = []
    remaining = sorted(flat)
    while remaining:
        ready = [n for n in remaining if all(p in order for p in parents(flat[n]))]
        if not ready:
            raise ValueError(f"conditions form a cycle among {', '.join(remaining)}")
        order += ready
        remaining = [n for n in remaining if n not in ready]
    return order


def is_active(spec: dict[str, Any], values: dict[str, Any]) -> bool:
    """True when every parent was drawn with one of the values the condition allows."""
    return all(name in values and values[name] in allowed for name, allowed in parents(spec).items())


def contains(spec: dict[str, Any], value: Any) -> bool:
    """``value`` is one this parameter can take (inside its range, or among its choices)."""
    if spec["type"] == "categorical":
        return value in list(spec["choices"])
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if spec["type"] == "int" and int(value) != value:
        return False
    return float(spec["low"]) <= float(value) <= float(spec["high"])


def warm_start_params(
    candidates: list[tuple[float, dict[str, Any]]], space: dict[str, Any], top_k: int
) -> list[dict[str, Any]]:
    """The ``top_k`` best distinct parameter sets of ``candidates`` (``(oriented value, params)``, higher is
    better, in the earlier study's order so ties keep it), each restricted to the parameters of ``space``
    with a value this space can take (the others are drawn as usual)."""
    flat = flatten_space(space)
    chosen: list[dict[str, Any]] = []
    for _, params in sorted(candidates, key=lambda c: -c[0]):
        kept = {name: value for name, value in params.items() if name in flat and contains(flat[name], value)}
        if kept and kept not in chosen:
            chosen.append(kept)
    return chosen[:top_k]
