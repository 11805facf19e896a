"""Typed configuration: schema dataclasses, Hydra loading and up-front validation."""

from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.loading import load_config
from redsm5_hpo.config.schema import (
    Config,
    DataConfig,
    HpoConfig,
    ModelConfig,
    TrackingConfig,
    TrainConfig,
)

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "HpoConfig",
    "ModelConfig",
    "TrackingConfig",
    "TrainConfig",
    "load_config",
]
