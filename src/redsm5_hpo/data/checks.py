"""The data package's configuration checks (collected by ``config.validation``)."""

from __future__ import annotations

from redsm5_hpo.config.schema import Config
from redsm5_hpo.config.validation import augment_methods
from redsm5_hpo.data.wordnet import WordNetMissing, require


def check_config(config: Config) -> list[str]:
    """Synonym and insert augmentation need WordNet's files."""
    if not augment_methods(config) & {"synonym", "insert"}:
        return []
    try:
        require(config.augment.wordnet_dir)
    except WordNetMissing as e:
        return [f"augment.methods: {e}"]
    return []
