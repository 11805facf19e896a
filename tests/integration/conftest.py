import pytest

from tests.helpers.study_cli import STUDY_OVERRIDES, cli, outcome


@pytest.fixture(scope="session")
def uninterrupted_root(tmp_path_factory):
    """The experiments directory of the two-trial study (``STUDY_OVERRIDES``) run once, without a stop."""
    root = tmp_path_factory.mktemp("baseline") / "experiments"
    result = cli(root, "tune", *STUDY_OVERRIDES)
    assert result.returncode == 0, result.stderr[-2000:]
    return root


@pytest.fixture(scope="session")
def uninterrupted(uninterrupted_root):
    """Its report and best weights hash: what every killed, signalled and resumed copy of it must reproduce."""
    return outcome(uninterrupted_root)
