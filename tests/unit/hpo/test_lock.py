import subprocess
import sys
import time

import pytest

from redsm5_hpo.hpo.lock import StudyLockedError, study_lock


def test_lock_is_exclusive_and_released(tmp_path) -> None:
    with (
        study_lock(tmp_path),
        pytest.raises(StudyLockedError, match="already running") as refused,
        study_lock(tmp_path),
    ):
        pass
    assert f"redsm5-hpo resume --study {tmp_path.name} experiments_dir={tmp_path.parent}" in str(refused.value)
    with study_lock(tmp_path):  # released on exit: a later run gets it
        pass


def test_claims_of_two_processes_on_one_study_dir_take_turns(tmp_path) -> None:
    from redsm5_hpo.hpo.lock import claim_lock

    script = (
        "import sys, time; from redsm5_hpo.hpo.lock import claim_lock\n"
        f"with claim_lock({str(tmp_path)!r}):\n"
        "    print('held', flush=True); time.sleep(1.5)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with claim_lock(tmp_path):
        waited = time.monotonic() - started
    holder.wait(10)
    assert waited > 0.5  # it waited for the other process's claim to end
