"""Cross-field checks on a built ``Config``; each returns problems instead of raising.

The checks that need a package above the config layer (WordNet files, the metric names the loop logs,
the tracking server's scheme) live in that package as ``check_config(config) -> list[str]`` and are
registered under the ``redsm5_hpo.config_checks`` entry points in ``pyproject.toml``; ``validate``
collects them from there, so this layer imports nothing above it.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from redsm5_hpo.config.schema import AUGMENT_METHODS, DEVICE_PATTERN, Config
from redsm5_hpo.config.search_space import flatten_space, parents, suggestion_order

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""``logs.stdout_level``, in any case (a ``str``, not a ``Literal``, so ``info`` works too)."""
PARAM_TYPES = ("float", "int", "categorical")
CHECKS_GROUP = "redsm5_hpo.config_checks"
"""Entry-point group of the packages' own configuration checks."""
Check = Callable[[Config], list[str]]


def field_choices() -> dict[str, tuple[str, ...]]:
    """``section.field`` -> allowed values, for every field typed with a ``Literal``."""
    choices: dict[str, tuple[str, ...]] = {}
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        if not dataclasses.is_dataclass(cls):
            continue
        for name, hint in typing.get_type_hints(cls).items():
            if typing.get_origin(hint) is typing.Literal:
                choices[f"{section.name}.{name}"] = typing.get_args(hint)
    return choices


CHOICES = field_choices()
"""Fields with a fixed set of values: checked in the config and in categorical search dimensions."""
PAIR_MIN_LENGTH = 64
"""Pair format: the longest criterion description takes about 20 tokens."""


@cache
def package_checks() -> tuple[Check, ...]:
    """The packages' ``check_config`` functions, by entry-point name."""
    return tuple(ep.load() for ep in sorted(entry_points(group=CHECKS_GROUP), key=lambda ep: ep.name))


def tune_problems(config: Config) -> list[str]:
    """What a study needs beyond what any run needs."""
    if not config.train.save_checkpoints:
        return ["train.save_checkpoints: a study needs checkpoints to evaluate its best trial on test"]
    return []


def augment_methods(config: Config) -> set[str]:
    """Every augmentation method the configuration or its search space can use."""
    try:
        searched = flatten_space(config.hpo.search_space).get("augment.methods", {}).get("choices") or []
    except ValueError:
        searched = []  # reported with the search space
    return {*config.augment.methods, *(m for choice in searched for m in str(choice).split("+") if m != "none")}


def validate(config: Config) -> list[str]:
    """Every problem of ``config`` as one readable line each (empty list = valid)."""
    problems = _data_problems(config) + _hpo_problems(config) + _model_zoo_problems(config)
    problems += _augment_problems(config) + _train_problems(config) + _hardware_problems(config)
    problems += _retention_problems(config) + _search_space_problems(config) + _tracking_problems(config)
    for check in package_checks():
        problems += check(config)
    return problems


def _data_problems(config: Config) -> list[str]:
    d = config.data
    problems: list[str] = []
    if not d.source:
        problems.append("data.source: must be 'sample', a directory or a hub dataset id")
    if not (0 < d.val_fraction < 1 and 0 < d.test_fraction < 1 and d.val_fraction + d.test_fraction < 1):
        problems.append(
            "data.val_fraction/test_fraction: each in (0, 1) with a sum below 1, "
            f"got {d.val_fraction} and {d.test_fraction}"
        )
    if d.split_protocol == "paper" and not 0 < d.val_fraction < 0.8:
        problems.append(
            f"data.val_fraction: with data.split_protocol=paper validation comes from the 80% training part, so it "
            f"must be below 0.8, got {d.val_fraction}"
        )
    if d.max_length < 16:
        problems.append(f"data.max_length: must be >= 16 tokens, got {d.max_length}")
    if d.window_stride is not None and not 0 <= d.window_stride <= d.max_length // 2:
        problems.append(
            f"data.window_stride: overlapping tokens between windows, from 0 to data.max_length / 2 "
            f"({d.max_length // 2}), got {d.window_stride}; lower it or leave it null (a quarter of max_length)"
        )
    if d.max_windows is not None and d.max_windows < 1:
        problems.append(f"data.max_windows: null (every window) or >= 1, got {d.max_windows}")
    if not 0 < d.fuzzy_threshold <= 100:
        problems.append(f"data.fuzzy_threshold: a rapidfuzz score in (0, 100], got {d.fuzzy_threshold}")
    if set(d.split_names) != {"train", "validation", "test"}:
        problems.append(
            f"data.split_names: needs exactly the keys train, validation, test, got {sorted(d.split_names)}"
        )
    return problems


def _hpo_problems(config: Config) -> list[str]:
    h = config.hpo
    problems: list[str] = []
    if h.n_trials < 1:
        problems.append(f"hpo.n_trials: must be >= 1, got {h.n_trials}")
    if h.pruner_startup_trials < 0 or h.pruner_warmup_epochs < 0 or h.hyperband_reduction_factor < 2:
        problems.append(
            "hpo.pruner_startup_trials/pruner_warmup_epochs: must be >= 0, hpo.hyperband_reduction_factor >= 2"
        )
    if h.n_workers < 1:
        problems.append(f"hpo.n_workers: must be >= 1, got {h.n_workers}")
    numeric = [n for n, spec in _flat_space(h.search_space).items() if spec.get("type") in ("float", "int")]
    if h.sampler == "cmaes" and h.search_space and not numeric:
        problems.append(
            "hpo.sampler=cmaes: CMA-ES models float and int parameters and this search space has none; use "
            "hpo.sampler=tpe (or gp) for a categorical space"
        )
    if h.warm_start_top_k < 1:
        problems.append(f"hpo.warm_start_top_k: parameter sets to queue, >= 1, got {h.warm_start_top_k}")
    if h.timeout_s is not None and h.timeout_s <= 0:
        problems.append(f"hpo.timeout_s: seconds > 0, or null for no budget, got {h.timeout_s}")
    if h.patience_trials is not None and h.patience_trials < 1:
        problems.append(f"hpo.patience_trials: trials >= 1, or null for no plateau stop, got {h.patience_trials}")
    if h.min_improvement < 0:
        problems.append(f"hpo.min_improvement: a margin >= 0, got {h.min_improvement}")
    if h.confirm.top_k < 0:
        problems.append(f"hpo.confirm.top_k: configurations to confirm, >= 0 (0 = off), got {h.confirm.top_k}")
    if h.confirm.top_k and h.confirm.seeds < 2:
        problems.append(
            f"hpo.confirm.seeds: at least 2 seeds per configuration give a spread, got {h.confirm.seeds}; "
            "or hpo.confirm.top_k=0 to confirm nothing"
        )
    bad_devices = [d for d in h.devices if not re.fullmatch(DEVICE_PATTERN, str(d))]
    if bad_devices:
        problems.append(f"hpo.devices: each one of cpu, cuda, cuda:N, mps or auto, got {bad_devices}")
    if h.heartbeat_interval_s <= 0 or h.stale_after_s <= 2 * h.heartbeat_interval_s:
        problems.append(
            "hpo.heartbeat_interval_s/stale_after_s: need 0 < 2 x heartbeat_interval_s < stale_after_s, "
            f"got {h.heartbeat_interval_s} and {h.stale_after_s}"
        )
    return problems


def _flat_space(space: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The search space's parameters by dotted name; empty when the space is malformed (its own check says why)."""
    try:
        return flatten_space(space)
    except (TypeError, ValueError, KeyError, AttributeError):
        return {}


def _train_problems(config: Config) -> list[str]:
    m, t = config.model, config.train
    problems: list[str] = []
    if not 0 <= t.momentum < 1:
        problems.append(f"train.momentum: must be in [0, 1), got {t.momentum}")
    if m.dropout_samples < 1:
        problems.append(f"model.dropout_samples: must be >= 1, got {m.dropout_samples}")
    if m.head_hidden < 1:
        problems.append(f"model.head_hidden: must be >= 1, got {m.head_hidden}")
    if not 0 <= m.dropout < 1:
        problems.append(f"model.dropout: must be in [0, 1), got {m.dropout}")
    for name in ("epochs", "batch_size", "grad_accum_steps", "checkpoint_interval_epochs"):
        if getattr(t, name) < 1:
            problems.append(f"train.{name}: must be a whole number >= 1, got {getattr(t, name)}")
    for name in ("lr_encoder", "lr_head"):
        if getattr(t, name) <= 0:
            problems.append(f"train.{name}: must be > 0, got {getattr(t, name)}")
    if not 0 <= t.warmup_ratio < 1:
        problems.append(f"train.warmup_ratio: must be in [0, 1), got {t.warmup_ratio}")
    if t.max_steps_per_epoch is not None and t.max_steps_per_epoch < 1:
        problems.append(f"train.max_steps_per_epoch: null or >= 1, got {t.max_steps_per_epoch}")
    return problems


def _model_zoo_problems(config: Config) -> list[str]:
    m, t = config.model, config.train
    problems = []
    for dotted, allowed in CHOICES.items():
        area, _, name = dotted.partition(".")
        value = getattr(getattr(config, area), name)
        if value not in allowed:
            problems.append(f"{dotted}: one of {', '.join(allowed)}, got {value!r}")
    if config.data.input_format == "pair" and config.data.max_length < PAIR_MIN_LENGTH:
        problems.append(
            f"data.max_length={config.data.max_length} leaves no room for the post after a criterion description "
            f"in data.input_format=pair; use at least {PAIR_MIN_LENGTH}"
        )
    if m.evidence_hidden < 1 or m.max_span_tokens < 1:
        problems.append(
            f"model.evidence_hidden/max_span_tokens: must be >= 1, got {m.evidence_hidden} and {m.max_span_tokens}"
        )
    if m.coupling == "evidence_informed" and t.evidence_loss_weight <= 0:
        problems.append(
            "model.coupling=evidence_informed pools under the evidence head's scores, which only learn with "
            f"train.evidence_loss_weight > 0 (got {t.evidence_loss_weight}); raise it or use coupling=independent"
        )
    if t.evidence_loss_weight < 0 or t.criteria_loss_weight <= 0:
        problems.append(
            "train.evidence_loss_weight must be >= 0 and train.criteria_loss_weight > 0, "
            f"got {t.evidence_loss_weight} and {t.criteria_loss_weight}"
        )
    if t.focal_gamma < 0 or t.gamma_penalty < 0:
        problems.append(f"train.focal_gamma/gamma_penalty: must be >= 0, got {t.focal_gamma} and {t.gamma_penalty}")
    if not 0 <= t.hybrid_alpha <= 1:
        problems.append(f"train.hybrid_alpha: must be in [0, 1], got {t.hybrid_alpha}")
    if not 0 <= t.label_smoothing < 1:
        problems.append(f"train.label_smoothing: must be in [0, 1), got {t.label_smoothing}")
    if not 0 < t.layer_lr_decay <= 1:
        problems.append(f"train.layer_lr_decay: must be in (0, 1] (1 = off), got {t.layer_lr_decay}")
    if t.fgm_epsilon < 0:
        problems.append(f"train.fgm_epsilon: must be >= 0 (0 = off), got {t.fgm_epsilon}")
    return problems


def _hardware_problems(config: Config) -> list[str]:
    """The form of the device settings; whether this machine has the device is checked when a command
    runs (``devices.resolve_runtime``), so a saved configuration still opens on another machine."""
    t = config.train
    problems = []
    if not re.fullmatch(DEVICE_PATTERN, t.device):
        problems.append(f"train.device: auto, cpu, cuda, cuda:N or mps, got {t.device!r}")
    if t.num_workers < 0:
        problems.append(
            f"train.num_workers: must be >= 0 (0 = load batches in the training process), got {t.num_workers}"
        )
    if t.eval_batch_size is not None and t.eval_batch_size < 1:
        problems.append(f"train.eval_batch_size: null (= train.batch_size) or >= 1, got {t.eval_batch_size}")
    if config.tracking.journal_sync_s < 0:
        problems.append(
            f"tracking.journal_sync_s: must be >= 0 (0 = fsync in every call), got {config.tracking.journal_sync_s}"
        )
    return problems


def _augment_problems(config: Config) -> list[str]:
    a = config.augment
    problems = []
    unknown = sorted(augment_methods(config) - set(AUGMENT_METHODS))
    if unknown:
        problems.append(f"augment.methods: {unknown} unknown; choose from {', '.join(AUGMENT_METHODS)}")
    if not 0 <= a.probability <= 1 or not 0 < a.word_fraction <= 1 or a.copies < 1:
        problems.append(
            "augment: need 0 <= probability <= 1, 0 < word_fraction <= 1 and copies >= 1, "
            f"got {a.probability}, {a.word_fraction} and {a.copies}"
        )
    return problems


def _tracking_problems(config: Config) -> list[str]:
    tr, lg, hub = config.tracking, config.logs, config.hub
    problems = []
    if tr.ca_bundle and not Path(tr.ca_bundle).expanduser().is_file():
        problems.append(f"tracking.ca_bundle: no file at {tr.ca_bundle}")
    for name in ("token_lifetime_s", "request_timeout_s", "journal_warn_mb"):
        if getattr(tr, name) <= 0:
            problems.append(f"tracking.{name}: must be > 0, got {getattr(tr, name)}")
    if tr.token_refresh_margin_s < 0 or tr.flush_timeout_s < 0:
        problems.append("tracking.token_refresh_margin_s/flush_timeout_s: must be >= 0")
    if lg.stdout_level.upper() not in LOG_LEVELS:
        problems.append(f"logs.stdout_level: one of {', '.join(LOG_LEVELS)}, got {lg.stdout_level!r}")
    if lg.max_mb <= 0 or lg.backup_count < 1:
        problems.append(f"logs.max_mb/backup_count: must be > 0 and >= 1, got {lg.max_mb} and {lg.backup_count}")
    if not (hub.token_check in ("auto", "none") or hub.token_check.startswith("command:")):
        problems.append(f"hub.token_check: 'auto', 'none' or 'command:<shell command>', got {hub.token_check!r}")
    if hub.recheck_interval_s <= 0:
        problems.append(f"hub.recheck_interval_s: must be > 0, got {hub.recheck_interval_s}")
    return problems


def _retention_problems(config: Config) -> list[str]:
    r, g = config.retention_policy, config.disk_guard
    problems = []
    if r.keep_last_n < 0:
        problems.append(f"retention_policy.keep_last_n: must be >= 0, got {r.keep_last_n}")
    if not 1 <= r.keep_best_k <= 2:
        problems.append(f"retention_policy.keep_best_k: between 1 and 2 (hard cap), got {r.keep_best_k}")
    if r.max_total_size_mb <= 0:
        problems.append(f"retention_policy.max_total_size_mb: must be > 0, got {r.max_total_size_mb}")
    if g.interval_s <= 0 or g.info_interval_s <= 0:
        problems.append(f"disk_guard.interval_s/info_interval_s: must be > 0, got {g.interval_s}, {g.info_interval_s}")
    if not 0 < g.error_free_fraction <= g.critical_free_fraction < 1:
        problems.append(
            "disk_guard: need 0 < error_free_fraction <= critical_free_fraction < 1, "
            f"got {g.error_free_fraction} and {g.critical_free_fraction}"
        )
    if g.reserve_mb < 0:
        problems.append(f"disk_guard.reserve_mb: must be >= 0, got {g.reserve_mb}")
    return problems


def _search_space_problems(config: Config) -> list[str]:
    problems: list[str] = []
    try:
        params = flatten_space(config.hpo.search_space)
    except ValueError as e:
        return [f"hpo.search_space: {e}"]
    try:
        suggestion_order(params)
    except ValueError as e:
        problems.append(f"hpo.search_space: {e}")
    for dotted, spec in params.items():
        where = f"hpo.search_space.{dotted}"
        for parent, allowed in parents(spec).items():
            parent_spec = params.get(parent)
            if parent_spec is None or parent_spec.get("type") != "categorical":
                problems.append(f"{where}.when: {parent!r} must be a categorical parameter of the search space")
            elif not set(map(str, allowed)) <= set(map(str, parent_spec.get("choices") or [])):
                problems.append(
                    f"{where}.when: {parent} can never be {allowed}; its choices are {parent_spec.get('choices')}"
                )
        area, _, name = dotted.partition(".")
        if area not in ("data", "augment", "model", "train") or not hasattr(getattr(config, area), name):
            problems.append(f"{where}: no such config field (use data.*, augment.*, model.* or train.* fields)")
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            problems.append(f"{where}.type: one of {', '.join(PARAM_TYPES)}, got {kind!r}")
        elif kind == "categorical" and not spec.get("choices"):
            problems.append(f"{where}.choices: a non-empty list is required for a categorical parameter")
        elif kind == "categorical" and dotted in CHOICES:
            unknown = [c for c in spec["choices"] if c not in CHOICES[dotted]]
            if unknown:
                problems.append(f"{where}.choices: {unknown} not among {', '.join(CHOICES[dotted])}")
        elif kind in ("float", "int"):
            low, high = spec.get("low"), spec.get("high")
            if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low >= high:
                problems.append(f"{where}: needs numeric low < high, got low={low!r} high={high!r}")
            elif spec.get("log") and low <= 0:
                problems.append(f"{where}: log scale needs low > 0, got {low}")
    return problems
