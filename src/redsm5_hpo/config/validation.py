"""Cross-field checks on a built ``Config``; each returns problems instead of raising."""

from __future__ import annotations

from pathlib import Path

from redsm5_hpo.config.schema import CRITERIA_HEADS, POOLINGS, Config
from redsm5_hpo.config.search_space import flatten_space, parents, suggestion_order
from redsm5_hpo.evaluation.metrics import validation_metric_names
from redsm5_hpo.tracking.auth import insecure_remote
from redsm5_hpo.tracking.sanitize import mask_secrets

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

OPTIMIZERS = ("adamw", "sgd")
PRUNERS = ("none", "median", "hyperband")
PARAM_TYPES = ("float", "int", "categorical")


def validate(config: Config) -> list[str]:
    """Every problem of ``config`` as one readable line each (empty list = valid)."""
    d, m, t, h = config.data, config.model, config.train, config.hpo
    problems: list[str] = []
    if not d.source:
        problems.append("data.source: must be 'sample', a directory or a hub dataset id")
    if not (0 < d.val_fraction < 1 and 0 < d.test_fraction < 1 and d.val_fraction + d.test_fraction < 1):
        problems.append(
            "data.val_fraction/test_fraction: each in (0, 1) with a sum below 1, "
            f"got {d.val_fraction} and {d.test_fraction}"
        )
    if d.max_length < 16:
        problems.append(f"data.max_length: must be >= 16 tokens, got {d.max_length}")
    if set(d.split_names) != {"train", "validation", "test"}:
        problems.append(
            f"data.split_names: needs exactly the keys train, validation, test, got {sorted(d.split_names)}"
        )
    if t.optimizer not in OPTIMIZERS:
        problems.append(f"train.optimizer: one of {', '.join(OPTIMIZERS)}, got {t.optimizer!r}")
    if not 0 <= t.momentum < 1:
        problems.append(f"train.momentum: must be in [0, 1), got {t.momentum}")
    if h.pruner not in PRUNERS:
        problems.append(f"hpo.pruner: one of {', '.join(PRUNERS)}, got {h.pruner!r}")
    if h.pruner_startup_trials < 0 or h.pruner_warmup_epochs < 0 or h.hyperband_reduction_factor < 2:
        problems.append(
            "hpo.pruner_startup_trials/pruner_warmup_epochs: must be >= 0, hpo.hyperband_reduction_factor >= 2"
        )
    if h.heartbeat_interval_s <= 0 or h.stale_after_s <= 2 * h.heartbeat_interval_s:
        problems.append(
            "hpo.heartbeat_interval_s/stale_after_s: need 0 < 2 x heartbeat_interval_s < stale_after_s, "
            f"got {h.heartbeat_interval_s} and {h.stale_after_s}"
        )
    if m.pooling not in POOLINGS:
        problems.append(f"model.pooling: one of {', '.join(POOLINGS)}, got {m.pooling!r}")
    if m.criteria_head not in CRITERIA_HEADS:
        problems.append(f"model.criteria_head: one of {', '.join(CRITERIA_HEADS)}, got {m.criteria_head!r}")
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
    known = validation_metric_names()
    if t.optimization_metric not in known:
        problems.append(
            f"train.optimization_metric: {t.optimization_metric!r} is not a metric the loop logs; "
            f"choose one of {', '.join(sorted(known))}"
        )
    problems += _retention_problems(config)
    if h.n_trials < 1:
        problems.append(f"hpo.n_trials: must be >= 1, got {h.n_trials}")
    problems += _search_space_problems(config)
    problems += _tracking_problems(config)
    return problems


def _tracking_problems(config: Config) -> list[str]:
    tr, lg, hub = config.tracking, config.logs, config.hub
    problems = []
    if tr.uri and insecure_remote(tr.uri) and not tr.allow_insecure_http:
        problems.append(
            f"tracking.uri: {mask_secrets(tr.uri)} sends metrics unencrypted over the network; use https:// "
            "(tracking.ca_bundle for a private CA) or set tracking.allow_insecure_http=true"
        )
    if tr.ca_bundle and not Path(tr.ca_bundle).expanduser().is_file():
        problems.append(f"tracking.ca_bundle: no file at {tr.ca_bundle}")
    for name in ("token_lifetime_s", "request_timeout_s", "journal_warn_mb"):
        if getattr(tr, name) <= 0:
            problems.append(f"tracking.{name}: must be > 0, got {getattr(tr, name)}")
    if tr.token_refresh_margin_s < 0 or tr.flush_timeout_s < 0:
        problems.append("tracking.token_refresh_margin_s/flush_timeout_s: must be >= 0")
    if lg.stdout_level.upper() not in LOG_LEVELS:
        problems.append(f"logs.stdout_level: one of {', '.join(LOG_LEVELS)}, got {lg.stdout_level!r}")
    if lg.max_bytes < 1 or lg.backup_count < 1:
        problems.append(f"logs.max_bytes/backup_count: must be >= 1, got {lg.max_bytes} and {lg.backup_count}")
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
    if r.max_total_size_gb <= 0:
        problems.append(f"retention_policy.max_total_size_gb: must be > 0, got {r.max_total_size_gb}")
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
        if area not in ("data", "model", "train") or not hasattr(getattr(config, area), name):
            problems.append(f"{where}: no such config field (use data.*, model.* or train.* fields)")
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            problems.append(f"{where}.type: one of {', '.join(PARAM_TYPES)}, got {kind!r}")
        elif kind == "categorical" and not spec.get("choices"):
            problems.append(f"{where}.choices: a non-empty list is required for a categorical parameter")
        elif kind in ("float", "int"):
            low, high = spec.get("low"), spec.get("high")
            if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low >= high:
                problems.append(f"{where}: needs numeric low < high, got low={low!r} high={high!r}")
            elif spec.get("log") and low <= 0:
                problems.append(f"{where}: log scale needs low > 0, got {low}")
    return problems
