import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

from redsm5_hpo.config import Config, load_config
from redsm5_hpo.data.loading import Corpus, load_corpus

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"


def tiny_overrides(experiments_dir: Path, *extra: str) -> list[str]:
    """The tiny study most tests run: the search alone (``hpo.baseline_trial=false``), as ``hpo.n_trials`` says."""
    base = ["model=tiny", f"experiments_dir={experiments_dir}", "train.epochs=2", "train.batch_size=16"]
    return [*base, "hpo.baseline_trial=false", *extra]


@pytest.fixture
def tiny_config(tmp_path: Path) -> Config:
    return load_config(tiny_overrides(tmp_path / "experiments"), CONFIG_DIR)


@pytest.fixture(scope="session")
def sample_corpus() -> Corpus:
    return load_corpus(Config().data, seed=13)
