"""The tiny random encoder the model tests build on, loaded once per test module."""

import pytest

from redsm5_hpo.models.encoder import load_encoder


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny-random", seed=0)
