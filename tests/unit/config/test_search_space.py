"""Conditional search spaces and the pruners built from the config."""

from __future__ import annotations

import optuna
import pytest

from redsm5_hpo.config import load_config
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.schema import with_values
from redsm5_hpo.config.search_space import contains, is_active, suggestion_order, warm_start_params
from redsm5_hpo.hpo.space import suggest
from redsm5_hpo.hpo.study import make_pruner
from tests.conftest import CONFIG_DIR

SPACE = {
    "train": {
        "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"train.optimizer": "sgd"}},
        "lr_head": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
    }
}


def test_children_come_after_their_parents() -> None:
    flat = {
        "a.child": {"type": "float", "when": {"z.parent": "x"}},
        "z.parent": {"type": "categorical", "choices": ["x", "y"]},
    }
    assert suggestion_order(flat) == ["z.parent", "a.child"]
    assert is_active(flat["a.child"], {"z.parent": "x"}) and not is_active(flat["a.child"], {"z.parent": "y"})
    with pytest.raises(ValueError, match="cycle"):
        suggestion_order({"a.x": {"when": {"a.y": 1}}, "a.y": {"when": {"a.x": 1}}})


def test_a_conditional_parameter_exists_only_with_its_parent_value() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, SPACE)
        seen.append(params["train.optimizer"])
        assert ("train.momentum" in params) == (params["train.optimizer"] == "sgd")
        study.tell(trial, 0.0)
    assert set(seen) == {"adamw", "sgd"}


def test_invalid_conditions_are_rejected_up_front(tmp_path) -> None:
    bad = "+hpo.search_space.train.momentum={type: float, low: 0.1, high: 0.9, when: {train.optimizer: rmsprop}}"
    parent = "+hpo.search_space.train.optimizer={type: categorical, choices: [adamw, sgd]}"
    with pytest.raises(ConfigError, match="can never be"):
        load_config([f"experiments_dir={tmp_path}", parent, bad], CONFIG_DIR)
    orphan = "+hpo.search_space.train.momentum={type: float, low: 0.1, high: 0.9, when: {train.nothing: x}}"
    with pytest.raises(ConfigError, match="must be a categorical parameter"):
        load_config([f"experiments_dir={tmp_path}", orphan], CONFIG_DIR)
    with pytest.raises(ConfigError, match=r"hpo\.pruner"):
        load_config([f"experiments_dir={tmp_path}", "hpo.pruner=asha"], CONFIG_DIR)


def test_pruners_from_config(tmp_path) -> None:
    config = load_config([f"experiments_dir={tmp_path}"], CONFIG_DIR)
    assert isinstance(make_pruner(config), optuna.pruners.NopPruner)
    config = with_values(config, {"hpo.pruner": "median"})
    assert isinstance(make_pruner(config), optuna.pruners.MedianPruner)
    config = with_values(config, {"hpo.pruner": "hyperband"})
    assert isinstance(make_pruner(config), optuna.pruners.HyperbandPruner)


def test_a_warm_start_takes_the_best_distinct_sets_restricted_to_this_space() -> None:
    space = {
        "train": {"lr_head": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
        "model": {"head_hidden": {"type": "categorical", "choices": [128, 256]}},
    }
    earlier = [
        (0.60, {"train.lr_head": 0.002, "model.head_hidden": 128, "model.dropout": 0.1}),
        (0.80, {"train.lr_head": 0.004, "model.head_hidden": 256, "model.dropout": 0.2}),
        (0.70, {"train.lr_head": 0.05, "model.head_hidden": 128}),  # lr_head outside this range: drawn anew
        (0.80, {"train.lr_head": 0.004, "model.head_hidden": 256, "model.dropout": 0.3}),  # the same here
    ]
    sets = warm_start_params(earlier, space, 3)
    assert sets == [
        {"train.lr_head": 0.004, "model.head_hidden": 256},  # best first; model.dropout is not searched here
        {"model.head_hidden": 128},
        {"train.lr_head": 0.002, "model.head_hidden": 128},
    ]
    assert warm_start_params(earlier, space, 1) == sets[:1]
    assert contains({"type": "int", "low": 1, "high": 3}, 2) and not contains({"type": "int", "low": 1, "high": 3}, 2.5)
    assert not contains({"type": "float", "low": 0.0, "high": 1.0}, "0.5")
