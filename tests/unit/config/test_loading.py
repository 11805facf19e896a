import dataclasses
from pathlib import Path

import pytest
import yaml

from redsm5_hpo.config import ConfigError, load_config
from redsm5_hpo.config.loading import apply_overrides, config_from_dict
from redsm5_hpo.config.schema import Config
from tests.conftest import CONFIG_DIR


@pytest.mark.parametrize(
    "group_file", sorted(p for p in CONFIG_DIR.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_every_shipped_yaml_loads_and_validates(group_file: Path) -> None:
    config = load_config([f"{group_file.parent.name}={group_file.stem}"], CONFIG_DIR)
    assert isinstance(config, Config)
    # every key of the YAML file reached the typed config
    section = dataclasses.asdict(getattr(config, group_file.parent.name))
    assert set(yaml.safe_load(group_file.read_text())) <= set(section)


def test_overrides_reach_typed_fields(tmp_path: Path) -> None:
    config = load_config(
        [
            f"experiments_dir={tmp_path}",
            "seed=7",
            "data.source=sample",
            "model.encoder=tiny-random",
            "train.epochs=5",
            "hpo.n_trials=9",
            "hpo.storage=sqlite:///x.db",
            "tracking.uri=sqlite:///y.db",
        ],
        CONFIG_DIR,
    )
    assert (config.experiments_dir, config.seed, config.train.epochs, config.hpo.n_trials) == (str(tmp_path), 7, 5, 9)
    assert (config.model.encoder, config.hpo.storage, config.tracking.uri) == (
        "tiny-random",
        "sqlite:///x.db",
        "sqlite:///y.db",
    )
    assert isinstance(config.train.lr_head, float)


def test_invalid_config_lists_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            [
                "train.epochs=0",
                "model.dropout=1.5",
                "train.optimization_metric=val_accuracy",
                "train.checkpoint_interval_epochs=0",
                "retention_policy.keep_best_k=3",
            ],
            CONFIG_DIR,
        )
    text = str(error.value)
    assert len(error.value.problems) == 5
    for key in (
        "train.epochs",
        "model.dropout",
        "train.optimization_metric",
        "train.checkpoint_interval_epochs",
        "retention_policy.keep_best_k",
    ):
        assert key in text
    assert "val_criteria_macro_f1" in text  # the fix: the valid metric names are listed


def test_unknown_keys_and_wrong_types_are_reported() -> None:
    raw = dataclasses.asdict(Config())
    raw["train"]["epochz"] = 3
    raw["train"]["batch_size"] = "eight"
    raw["model"]["dropout"] = True
    with pytest.raises(ConfigError) as error:
        config_from_dict(raw)
    assert any("train.epochz: unknown key" in p for p in error.value.problems)
    assert any("train.batch_size: expected int" in p for p in error.value.problems)
    assert any("model.dropout: expected float" in p for p in error.value.problems)


def test_hydra_override_of_unknown_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_key"):
        load_config(["train.no_such_key=1"], CONFIG_DIR)


def test_missing_config_dir_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no config\.yaml"):
        load_config([], tmp_path)


def test_search_space_is_checked() -> None:
    raw = dataclasses.asdict(Config())
    raw["hpo"]["search_space"] = {
        "train": {
            "lr_head": {"type": "float", "low": 0.0, "high": 1.0, "log": True},
            "nope": {"type": "int", "low": 1, "high": 2},
        },
        "model": {"head_hidden": {"type": "categorical", "choices": []}, "dropout": {"type": "gaussian"}},
    }
    with pytest.raises(ConfigError) as error:
        config_from_dict(raw)
    problems = "\n".join(error.value.problems)
    assert "log scale needs low > 0" in problems
    assert "train.nope: no such config field" in problems
    assert "choices: a non-empty list" in problems
    assert "dropout.type" in problems


def test_apply_overrides_returns_validated_copy() -> None:
    base = Config()
    changed = apply_overrides(base, {"train.lr_head": 0.01, "model.head_hidden": 64})
    assert (changed.train.lr_head, changed.model.head_hidden) == (0.01, 64)
    assert base.train.lr_head != 0.01
    with pytest.raises(ConfigError):
        apply_overrides(base, {"train.epochs": -1})


def test_checkpoint_interval_must_be_a_whole_number_of_epochs() -> None:
    with pytest.raises(ConfigError, match=r"train\.checkpoint_interval_epochs: expected int"):
        load_config(["train.checkpoint_interval_epochs=1.5"], CONFIG_DIR)


def test_retention_presets_and_disk_guard_checks() -> None:
    aggressive = load_config(["retention_policy=aggressive"], CONFIG_DIR).retention_policy
    assert (aggressive.keep_last_n, aggressive.keep_best_k, aggressive.max_total_size_gb) == (0, 1, 2.0)
    with pytest.raises(ConfigError) as error:
        load_config(["disk_guard.error_free_fraction=0.2", "retention_policy.max_total_size_gb=0"], CONFIG_DIR)
    assert len(error.value.problems) == 2


def test_device_and_precision_settings_are_checked_up_front() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            [
                "train.device=gpu",
                "train.precision=fp8",
                "train.num_workers=-1",
                "train.eval_batch_size=0",
                "tracking.journal_sync_ms=-5",
            ],
            CONFIG_DIR,
        )
    text = str(error.value)
    assert len(error.value.problems) == 5
    for needle in ("train.device: auto, cpu, cuda, cuda:N or mps", "train.precision: one of auto, fp32, bf16, fp16"):
        assert needle in text


def test_a_saved_cuda_config_still_loads_on_a_machine_without_cuda() -> None:
    """Whether the device exists is checked when a command runs, so a GPU study can be reported anywhere."""
    config = load_config(["train.device=cuda:1", "train.precision=bf16"], CONFIG_DIR)
    assert config_from_dict(dataclasses.asdict(config)).train.device == "cuda:1"


def test_evaluation_and_split_protocol_choices_are_checked() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            ["evaluation.evidence_metric=token", "data.split_protocol=paper", "data.val_fraction=0.85"], CONFIG_DIR
        )
    problems = error.value.problems
    assert any("evaluation.evidence_metric: one of char, sentence, span, got 'token'" in p for p in problems)
    assert any("data.val_fraction: with data.split_protocol=paper" in p for p in problems)
    config = load_config(["evaluation.evidence_metric=span", "data.split_protocol=paper"], CONFIG_DIR)
    assert (config.evaluation.evidence_metric, config.data.split_protocol) == ("span", "paper")


def test_a_resume_takes_overrides_that_do_not_change_what_trials_compute() -> None:
    from redsm5_hpo.config.resume import override_keys, resume_config

    saved = load_config(["model=tiny", "train.lr_head=0.003"], CONFIG_DIR)
    args = ["retention_policy=aggressive", "train.device=cpu", "+disk_guard.reserve_mb=8", "experiments_dir=/x"]
    requested = load_config([*args[:2], "disk_guard.reserve_mb=8", "experiments_dir=/x"], CONFIG_DIR)
    assert override_keys(args) == ["retention_policy", "train.device", "disk_guard.reserve_mb", "experiments_dir"]
    resumed, changed = resume_config(saved, requested, override_keys(args))
    assert resumed.retention_policy == requested.retention_policy and resumed.retention_policy.keep_last_n == 0
    assert (resumed.train.device, resumed.disk_guard.reserve_mb) == ("cpu", 8)
    assert resumed.experiments_dir == saved.experiments_dir  # a locator: it finds the study, changes nothing
    assert (resumed.model, resumed.train.lr_head) == (saved.model, 0.003)  # what trials compute is kept
    assert changed["retention_policy.keep_last_n"] == 0 and "experiments_dir" not in changed
    changes = ["model.dropout=0.33", "train.lr_head=0.5", "tracking.uri=file:///tmp/mlruns", "data.max_length=128"]
    with pytest.raises(ConfigError) as error:
        resume_config(saved, load_config(changes, CONFIG_DIR), override_keys(changes))
    refused = [p for p in error.value.problems if p.startswith("resume: ")]
    assert [p.split()[1] for p in refused] == ["data.max_length", "model.dropout", "train.lr_head"]
    assert "resume accepts overrides of: retention_policy" in error.value.problems[-1]


def test_a_resume_accepts_any_key_set_to_the_value_the_study_saved() -> None:
    from redsm5_hpo.config.resume import override_keys, resume_config

    tune_line = ["model=tiny", "seed=31", "train.epochs=4", "hpo.n_trials=3", "retention_policy.keep_last_n=2"]
    saved = load_config(tune_line, CONFIG_DIR)
    resumed, changed = resume_config(saved, load_config(tune_line, CONFIG_DIR), override_keys(tune_line))
    assert resumed == saved and changed == {}  # the same line again changes nothing
    other_seed = ["seed=32", "train.epochs=4"]
    with pytest.raises(ConfigError) as error:
        resume_config(saved, load_config(other_seed, CONFIG_DIR), override_keys(other_seed))
    assert [p.split()[1] for p in error.value.problems if p.startswith("resume: ")] == ["seed"]


def test_workers_and_their_devices_are_validated_and_may_change_on_resume() -> None:
    from redsm5_hpo.config.resume import resume_config

    config = load_config(["hpo.n_workers=2", "hpo.devices=[cuda:0,cuda:1]"], CONFIG_DIR)
    assert (config.hpo.n_workers, config.hpo.devices) == (2, ["cuda:0", "cuda:1"])
    with pytest.raises(ConfigError) as error:
        load_config(["hpo.n_workers=0", "hpo.devices=[gpu0]"], CONFIG_DIR)
    assert [p.split(":")[0] for p in error.value.problems] == ["hpo.n_workers", "hpo.devices"]
    saved = load_config([], CONFIG_DIR)
    resumed, changed = resume_config(saved, config, ["hpo.n_workers", "hpo.devices"])
    assert changed == {"hpo.n_workers": 2, "hpo.devices": ["cuda:0", "cuda:1"]} and resumed.hpo.n_workers == 2


def test_renamed_keys_still_work_with_a_warning_and_their_old_unit() -> None:
    from redsm5_hpo.config.loading import ConfigDeprecationWarning

    with pytest.warns(ConfigDeprecationWarning, match=r"use retention_policy\.max_total_size_mb \(GB to MB\)"):
        config = load_config(["retention_policy.max_total_size_gb=3", "tracking.journal_sync_ms=50"], CONFIG_DIR)
    assert (config.retention_policy.max_total_size_mb, config.tracking.journal_sync_s) == (3072, 0.05)
    saved = dataclasses.asdict(config)
    saved["logs"] = {**saved["logs"], "max_bytes": 2 * 2**20}
    del saved["logs"]["max_mb"]
    with pytest.warns(ConfigDeprecationWarning, match="logs.max_bytes"):  # a study.json written before the rename
        assert config_from_dict(saved).logs.max_mb == 2


def test_config_is_frozen_and_choices_come_from_the_literal_types() -> None:
    from redsm5_hpo.config.schema import OPTIMIZERS, with_values
    from redsm5_hpo.config.validation import CHOICES

    config = load_config([], CONFIG_DIR)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 3  # type: ignore[misc]
    assert CHOICES["train.optimizer"] == OPTIMIZERS == ("adamw", "sgd")
    assert with_values(config, {"train.epochs": 3, "seed": 1}).train.epochs == 3 and config.train.epochs == 5


def test_each_package_brings_its_own_checks_through_entry_points() -> None:
    from redsm5_hpo.config.validation import package_checks

    assert [check.__module__ for check in package_checks()] == [
        "redsm5_hpo.data.checks",
        "redsm5_hpo.evaluation.checks",
        "redsm5_hpo.remote",
        "redsm5_hpo.tracking.checks",
    ]
    with pytest.raises(ConfigError, match="is not a metric the loop logs"):
        load_config(["train.optimization_metric=val_nothing"], CONFIG_DIR)


def test_every_key_of_the_schema_is_in_the_shipped_config_yaml() -> None:
    """Hydra refuses an override of a key missing from config.yaml (with its own append advice), so every
    key a user can set must be there."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from redsm5_hpo.config.loading import known_keys

    with initialize_config_dir(config_dir=str(CONFIG_DIR.resolve()), version_base="1.3"):
        composed = OmegaConf.to_container(compose(config_name="config"), resolve=False)

    def present(key: str) -> bool:
        node = composed
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    missing = sorted(key for key in known_keys() if not present(key))
    assert not missing, f"keys of the schema missing from configs/config.yaml: {missing}"


def test_study_control_keys_are_validated_up_front_with_the_fix() -> None:
    bad = ["hpo.timeout_s=0", "hpo.patience_trials=0", "hpo.min_improvement=-1", "hpo.warm_start_top_k=0"]
    with pytest.raises(ConfigError) as error:
        load_config(bad, CONFIG_DIR)
    assert [p.split(":")[0] for p in error.value.problems] == [
        "hpo.warm_start_top_k",
        "hpo.timeout_s",
        "hpo.patience_trials",
        "hpo.min_improvement",
    ]
    categorical = "+hpo.search_space={model: {head_hidden: {type: categorical, choices: [128, 256]}}}"
    with pytest.raises(ConfigError) as error:
        load_config(["hpo.sampler=cmaes", "~hpo.search_space", categorical], CONFIG_DIR)
    assert any(p.startswith("hpo.sampler=cmaes:") and "hpo.sampler=tpe" in p for p in error.value.problems)
    with pytest.raises(ConfigError):
        load_config(["hpo.sampler=bayes"], CONFIG_DIR)
    assert load_config(["hpo.sampler=cmaes"], CONFIG_DIR).hpo.sampler == "cmaes"  # the default space is numeric
