"""Hydra YAML -> typed ``Config``, with every problem reported at once."""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
import warnings
from pathlib import Path
from typing import Any

from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.schema import DEPRECATED_KEYS, Config
from redsm5_hpo.config.validation import validate

CONFIG_DIR_ENV = "REDSM5_CONFIG_DIR"
EXPERIMENTS_DIR_ENV = "REDSM5_EXPERIMENTS_DIR"
"""Sets the default ``experiments_dir`` for every command (``experiments_dir=...`` still wins)."""


def default_config_dir() -> Path:
    """``$REDSM5_CONFIG_DIR``, else ``configs/`` of the source tree, else ``./configs``."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    source_tree = Path(__file__).resolve().parents[3] / "configs"
    return source_tree if source_tree.is_dir() else Path.cwd() / "configs"


def load_config(overrides: list[str] | None = None, config_dir: str | Path | None = None) -> Config:
    """Compose ``config.yaml`` with Hydra-style ``key=value`` overrides and validate it."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = [_accept_deprecated(o) for o in overrides or []]
    experiments = os.environ.get(EXPERIMENTS_DIR_ENV)
    if experiments and not any(o.split("=", 1)[0].lstrip("+~") == "experiments_dir" for o in overrides):
        overrides.insert(0, f"experiments_dir={experiments}")  # the user's default; an override still wins
    directory = Path(config_dir) if config_dir else default_config_dir()
    if not (directory / "config.yaml").is_file():
        raise ConfigError([f"no config.yaml in {directory}; pass --config-dir or set {CONFIG_DIR_ENV}"])
    unknown = unknown_override_problems(overrides, directory)
    if unknown:  # before Hydra, whose answer to a typo is advice to add the key
        raise ConfigError(unknown)
    try:
        with initialize_config_dir(config_dir=str(directory.resolve()), version_base="1.3"):
            composed = compose(config_name="config", overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError([f"{e} (overrides: {' '.join(overrides or []) or 'none'})"]) from e
    raw = OmegaConf.to_container(composed, resolve=True)
    assert isinstance(raw, dict)
    return config_from_dict({str(k): v for k, v in raw.items()})


class ConfigDeprecationWarning(UserWarning):
    """A configuration key that still works but will not in the next release."""


def _accept_deprecated(override: str) -> str:
    """An override of a renamed key is added next to the new one (``++``) so that ``_build`` converts it."""
    key = override.split("=", 1)[0].lstrip("+~")
    return f"++{override.lstrip('+')}" if key in DEPRECATED_KEYS and "=" in override else override


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a ``Config`` from plain data; raise ``ConfigError`` listing all problems."""
    problems: list[str] = []
    config = _build(Config, raw, "", problems)
    if not problems:
        problems = validate(config)
    if problems:
        raise ConfigError(problems)
    return config


def apply_overrides(config: Config, values: dict[str, Any]) -> Config:
    """A validated copy of ``config`` with dotted keys (``train.lr_head``) set to new values."""
    raw = dataclasses.asdict(config)
    for dotted, value in values.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config_from_dict(raw)


def _build(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{path or 'config'}: expected a mapping, got {type(raw).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    raw = _renamed(raw, path)
    for unknown in sorted(set(raw) - fields):
        problems.append(_unknown_key(f"{path}{unknown}"))
    kwargs: dict[str, Any] = {}
    for name in fields & set(raw):
        hint, value, where = hints[name], raw[name], f"{path}{name}"
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, where + ".", problems)  # type: ignore[arg-type]
        elif typing.get_origin(hint) is list and isinstance(value, str):  # a search-space choice such as "synonym+swap"
            kwargs[name] = [v for v in value.split("+") if v and v != "none"]
        elif _type_ok(hint, value):
            kwargs[name] = float(value) if hint is float else value
        else:
            problems.append(f"{where}: expected {_type_name(hint)}, got {value!r}")
    return cls(**kwargs)


def known_keys(cls: type = Config, path: str = "") -> dict[str, bool]:
    """Every dotted key of the schema, and whether it is a mapping whose own keys are free (``search_space``,
    ``remote.options``)."""
    keys: dict[str, bool] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, key = hints[f.name], f"{path}{f.name}"
        keys[key] = typing.get_origin(hint) is dict
        if dataclasses.is_dataclass(hint):
            keys |= known_keys(hint, f"{key}.")  # type: ignore[arg-type]
    return keys


def unknown_override_problems(overrides: list[str], directory: Path) -> list[str]:
    """``key=value`` items whose key is neither in the schema (nor under a free mapping, a config group or a
    renamed key), each with the closest known key."""
    keys = known_keys()
    groups = {p.name for p in directory.iterdir() if p.is_dir()}
    problems = []
    for item in overrides:
        if "=" not in item:
            continue
        key = item.split("=", 1)[0].lstrip("+~")
        parents = [".".join(key.split(".")[:i]) for i in range(1, key.count(".") + 1)]
        if key in keys or key in groups or key in DEPRECATED_KEYS or any(keys.get(p) for p in parents):
            continue
        problems.append(_unknown_key(key))
    return problems


def _unknown_key(key: str) -> str:
    """``key: unknown key``, with the closest known keys when there are any."""
    keys = list(known_keys())
    leaves = [k for k in keys if not any(other.startswith(f"{k}.") for other in keys)]
    close = difflib.get_close_matches(key, leaves, n=1, cutoff=0.6)
    section = key.rpartition(".")[0]
    if not close and section:
        close = difflib.get_close_matches(key, [k for k in leaves if k.startswith(f"{section}.")], n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{key}: unknown key{hint} (every key: docs/configuration-reference.md)"


def _renamed(raw: dict[str, Any], path: str) -> dict[str, Any]:
    """``raw`` with each deprecated key of this section converted to its new key and unit, with a warning."""
    raw = dict(raw)
    for old in [k for k in raw if f"{path}{k}" in DEPRECATED_KEYS]:
        new, factor, change = DEPRECATED_KEYS[f"{path}{old}"]
        value = raw.pop(old)
        warnings.warn(
            f"{path}{old} is deprecated and goes in the next release: use {path}{new} ({change}); "
            f"{old}={value} is read as {new}={value} x {factor:g}",
            ConfigDeprecationWarning,
            stacklevel=2,
        )
        raw[new] = value * factor if _type_ok(float, value) else value
    return raw


def _type_ok(hint: Any, value: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:  # the base type here; validation names the allowed values
        return isinstance(value, tuple({type(arg) for arg in typing.get_args(hint)}))
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is not None:
        return isinstance(value, origin)
    if hint is Any:
        return True
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
