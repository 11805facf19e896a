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
