import pytest

from redsm5_hpo.hpo.lock import StudyLockedError, study_lock


def test_lock_is_exclusive_and_released(tmp_path) -> None:
    with study_lock(tmp_path), pytest.raises(StudyLockedError, match="already running"), study_lock(tmp_path):
        pass
    with study_lock(tmp_path):  # released on exit: a later run gets it
        pass
