"""Which overrides a resumed study accepts: those that change how it runs, never what a trial computes.

A study resumes with its saved configuration. Settings of the machine and of the bookkeeping (workers,
devices, retention, the disk guard, tracking, logs, the token check, how often checkpoints are saved,
worker heartbeats) may change, so the advice of a disk-full report (relax retention, save less often) can
be applied to the stopped study; so may when the study stops (its time budget, its patience) and how many
trials it runs (more, never fewer: the study plan checks that). Anything else (model, data, learning
rates, the search space, the seed, the sampler) would make the resumed trials differ from the
uninterrupted ones, and is refused with the list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.config.schema import Config

RESUME_SAFE = (
    "retention_policy",
    "disk_guard",
    "tracking",
    "remote",
    "logs",
    "hub",
    "train.device",
    "train.checkpoint_interval_epochs",
    "hpo.n_workers",
    "hpo.devices",
    "hpo.heartbeat_interval_s",
    "hpo.stale_after_s",
    "hpo.timeout_s",
    "hpo.patience_trials",
    "hpo.min_improvement",
    "hpo.n_trials",
)
"""Config sections and keys a resume may change (a section covers every key in it)."""
LOCATORS = ("experiments_dir",)
"""Keys that only say where the study is: used to find it, never changed in it."""


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The dotted keys (or config groups, e.g. ``retention_policy``) of command-line ``key=value`` items."""
    return [item.split("=", 1)[0].lstrip("+~") for item in overrides if "=" in item]


def is_resume_safe(key: str) -> bool:
    return any(key == safe or key.startswith(f"{safe}.") for safe in RESUME_SAFE)


MISSING = object()


def value_at(config: Config, key: str) -> Any:
    """The value of a dotted ``key`` (a section, a field, or an entry of a mapping field); ``MISSING`` when
    ``config`` has no such key."""
    node: Any = config
    for part in key.split("."):
        node = node.get(part, MISSING) if isinstance(node, Mapping) else getattr(node, part, MISSING)
        if node is MISSING:
            break
    return node


def resume_config(saved: Config, requested: Config, keys: Sequence[str]) -> tuple[Config, dict[str, Any]]:
    """``saved`` with the values ``requested`` holds for ``keys`` (the user's overrides), and those values
    by dotted key. A key set to the value the study saved changes nothing and is accepted whatever it is
    (a script that re-runs its ``tune`` line as ``resume`` repeats the study's own settings). Raises
    ``ConfigError`` listing every other key a resume cannot change."""
    keys = [k for k in keys if not _unchanged(saved, requested, k)]
    refused = sorted({k for k in keys if k not in LOCATORS and not is_resume_safe(k)})
    if refused:
        raise ConfigError(
            [
                f"resume: {key} would change what the study's trials compute; a resumed study keeps its saved "
                f"value. Start a new study with `redsm5-hpo tune ... {key}=...` instead"
                for key in refused
            ]
            + [f"resume accepts overrides of: {', '.join(RESUME_SAFE)}"]
        )
    values: dict[str, Any] = {}
    for key in keys:
        if key in LOCATORS:
            continue
        node = value_at(requested, key)
        if dataclasses.is_dataclass(node) and not isinstance(node, type):  # a section: retention_policy=aggressive
            values |= {f"{key}.{name}": value for name, value in dataclasses.asdict(node).items()}
        else:
            values[key] = node
    return (apply_overrides(saved, values) if values else saved), values


def _unchanged(saved: Config, requested: Config, key: str) -> bool:
    value = value_at(requested, key)
    return value is not MISSING and value == value_at(saved, key)
