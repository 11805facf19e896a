import pytest

from tests.helpers.study_cli import STUDY_OVERRIDES, cli, outcome


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    """The report and best weights hash of the two-trial study (``STUDY_OVERRIDES``) run without a stop:
    what every killed, signalled and resumed copy of it must reproduce. Run once per session."""
    root = tmp_path_factory.mktemp("baseline") / "experiments"
    result = cli(root, "tune", *STUDY_OVERRIDES)
    assert result.returncode == 0, result.stderr[-2000:]
    return outcome(root)
