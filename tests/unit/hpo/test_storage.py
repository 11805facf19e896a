"""Optuna storages behind hpo.storage / hpo.n_workers, and Optuna's heartbeat through the public API."""

import logging
import time

import optuna
import pytest

from redsm5_hpo.config.loading import load_config
from redsm5_hpo.hpo.slots import claim_slot, enqueue_slots
from redsm5_hpo.hpo.storage import (
    ask,
    default_storage,
    fail_stale_trials,
    has_heartbeat,
    heartbeat,
    is_shared,
    open_storage,
    unnamed_shared_study,
)
from redsm5_hpo.hpo.study import create_study
from redsm5_hpo.pipeline.worker_pool import threads_per_worker, worker_device
from tests.conftest import CONFIG_DIR


def test_one_worker_gets_sqlite_several_get_a_journal_file(tmp_path) -> None:
    one, two = default_storage(tmp_path, 1), default_storage(tmp_path, 2)
    assert one == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert two == f"journal://{tmp_path.resolve() / 'optuna.journal'}"
    assert not is_shared(one) and not is_shared(two) and is_shared("postgresql://u:p@db/redsm5")
    assert isinstance(open_storage(two), optuna.storages.JournalStorage)
    assert not has_heartbeat(open_storage(one))  # one process: the study lock, not heartbeats


def test_two_studies_on_one_journal_file_share_the_queue(tmp_path) -> None:
    config = load_config(["model=tiny", "hpo.n_trials=3", "hpo.baseline_trial=false"], CONFIG_DIR)
    url = default_storage(tmp_path, 2)
    first = create_study(config, "shared", url)
    enqueue_slots(first, config)
    second = create_study(config, "shared", url)  # another process's view of the same file
    claimed = [claim_slot(first), claim_slot(second), claim_slot(first), claim_slot(second)]
    assert [t.user_attrs["slot"] for t in claimed[:3] if t] == [0, 1, 2] and claimed[3] is None


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_without_heartbeats_goes_to_the_stale_callback_a_beating_one_does_not(tmp_path) -> None:
    stale: list[int] = []
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'hb.db'}",
        heartbeat_interval=1,
        grace_period=3,
        heartbeat_stale_trial_callback=lambda study, trial: stale.append(trial.number),
    )
    study = optuna.create_study(study_name="hb", storage=storage)
    beating, silent = ask(study), ask(study)
    with heartbeat(storage, study, beating, interval_s=0.2):
        with heartbeat(storage, study, silent, interval_s=0.2):
            pass  # one beat, then silence
        time.sleep(4)
        fail_stale_trials(study)
    assert stale == [silent.number]
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states == {beating.number: optuna.trial.TrialState.RUNNING, silent.number: optuna.trial.TrialState.FAIL}


@pytest.mark.parametrize(
    ("devices", "index", "default", "expected"),
    [
        ([], 3, None, None),
        ([], 1, "cpu", "cpu"),
        (["cuda:0", "cuda:1"], 2, "cpu", "cuda:0"),
        (["cuda:0", "cuda:1"], 1, None, "cuda:1"),
    ],
)
def test_workers_take_devices_round_robin(devices, index, default, expected) -> None:
    assert worker_device(devices, index, default) == expected


def test_each_worker_gets_its_share_of_the_cores() -> None:
    assert threads_per_worker(2, cpus=16) == 8
    assert threads_per_worker(3, cpus=2) == 1  # never none


def test_a_new_study_on_a_database_server_needs_a_name() -> None:
    database = "postgresql://hpo:secret@db.internal/redsm5"
    problem = unnamed_shared_study(database, None)
    assert problem is not None and "hpo.study_name=<name>" in problem and "every machine" in problem
    assert unnamed_shared_study(database, "study_lr_sweep") is None
    assert unnamed_shared_study("sqlite:///x/optuna.db", None) is None  # one process's own storage
    assert unnamed_shared_study("journal:///x/optuna.journal", None) is None
    assert unnamed_shared_study(None, None) is None  # the default storage


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_heartbeat_the_database_did_not_record_is_a_warning_with_what_to_check(tmp_path, caplog) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=60)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    beats = []

    def blinking(trial_id):
        beats.append(trial_id)
        if len(beats) > 1:  # the first beat is written; the database then goes away
            raise ConnectionError("server closed the connection unexpectedly")

    storage.record_heartbeat = blinking
    with caplog.at_level(logging.WARNING, logger="redsm5_hpo.hpo.storage"), heartbeat(storage, study, trial, 0.05):
        time.sleep(0.3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "did not record trial 0's heartbeat (server closed the connection" in warnings[0]
    assert "hpo.stale_after_s" in warnings[0] and "database" in warnings[0]
