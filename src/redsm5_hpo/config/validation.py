"""Cross-field checks on a built ``Config``; each returns problems instead of raising."""

from __future__ import annotations

from redsm5_hpo.config.schema import Config
from redsm5_hpo.config.search_space import flatten_space
from redsm5_hpo.evaluation.metrics import validation_metric_names

POOLINGS = ("mean", "cls")
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
    if m.pooling not in POOLINGS:
        problems.append(f"model.pooling: one of {', '.join(POOLINGS)}, got {m.pooling!r}")
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
    for dotted, spec in params.items():
        where = f"hpo.search_space.{dotted}"
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
