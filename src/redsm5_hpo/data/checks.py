"""The data package's configuration checks (collected by ``config.validation``)."""

from __future__ import annotations

from pathlib import Path

from redsm5_hpo.config.schema import Config
from redsm5_hpo.config.validation import augment_methods
from redsm5_hpo.data.wordnet import WordNetMissing, require


def check_config(config: Config) -> list[str]:
    """A local-looking data source must be a directory; synonym and insert augmentation need WordNet's files."""
    return [*_source_problems(config.data.source), *_wordnet_problems(config)]


def looks_local(source: str) -> bool:
    """A path, not a hub id (``owner/name``): absolute, relative to here or home, or more than two parts."""
    return source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") > 1


def _source_problems(source: str) -> list[str]:
    if source == "sample" or not looks_local(source):
        return []
    path = Path(source).expanduser()
    if path.is_dir():
        return []
    what = "is a file, not a directory" if path.exists() else "directory not found"
    return [
        f"data.source: {source}: {what}. A local source is a directory holding the release's two CSV files "
        "(posts and annotations); a hub id looks like owner/name; data.source=sample is the bundled sample."
    ]


def _wordnet_problems(config: Config) -> list[str]:
    if not augment_methods(config) & {"synonym", "insert"}:
        return []
    try:
        require(config.augment.wordnet_dir)
    except WordNetMissing as e:
        return [f"augment.methods: {e}"]
    return []
