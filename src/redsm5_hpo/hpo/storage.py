"""Where a study's trials live, through Optuna's public storages only.

- ``sqlite:///...`` (the default for one worker): one process at a time, which the study lock enforces.
- ``journal:///<path>`` (the default for ``hpo.n_workers`` > 1): Optuna's ``JournalStorage`` over an
  append-only file with its own file lock; several processes on one machine share it. The process that
  started the workers watches them, so a worker that dies is noticed by its exit, not a heartbeat.
- any other SQLAlchemy URL (``postgresql://``, ``mysql://``): Optuna's ``RDBStorage`` with its heartbeat.
  Each running trial records a heartbeat every ``hpo.heartbeat_interval_s``; a worker that starts or
  finishes a trial fails the trials silent for longer than ``hpo.stale_after_s``
  (``optuna.storages.fail_stale_trials``) and Optuna hands each to ``on_stale``, which re-queues it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

from redsm5_hpo.layout import StudyDir

log = logging.getLogger(__name__)

JOURNAL_SCHEME = "journal://"
StaleCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def default_storage(study_dir: Path, n_workers: int = 1) -> str:
    """A SQLite file for one worker, a journal file (several processes, one machine) for more."""
    study = StudyDir(Path(study_dir).resolve())
    if n_workers > 1:
        return f"{JOURNAL_SCHEME}{study.optuna_journal}"
    return f"sqlite:///{study.optuna_db}"


def relocated(url: str, study_dir: Path) -> str:
    """``url`` for the study now in ``study_dir``: the study's own SQLite or journal file (recorded with its
    path on the machine that created it) is the one in ``study_dir``; any other URL is unchanged."""
    study = StudyDir(Path(study_dir).resolve())
    for default, own in (("sqlite:///", study.optuna_db), (JOURNAL_SCHEME, study.optuna_journal)):
        if url.startswith(default):
            recorded = Path(url.removeprefix(default))
            if recorded.name == own.name and recorded.parent.name == study.path.name:
                return f"{default}{own}"
    return url


def is_journal(url: str) -> bool:
    return url.startswith(JOURNAL_SCHEME)


def is_shared(url: str) -> bool:
    """A database server (PostgreSQL, MySQL): workers on several machines may run the study at once, so no
    process can take it for its own. A SQLite or journal file belongs to the process holding the study lock
    (and the workers it started)."""
    return not (url.startswith("sqlite") or is_journal(url))


def unnamed_shared_study(storage: str | None, study_name: str | None) -> str | None:
    """What is wrong with starting a study on a database server without ``hpo.study_name`` (None when
    nothing is): every machine that runs the same command would create a study of its own."""
    if not storage or not is_shared(storage) or study_name:
        return None
    return (
        "hpo.study_name: hpo.storage is a database server that other machines share, so a new study on it needs "
        "a name they all use (without one, each `tune` would start a study of its own and run the same trials "
        "again). Add hpo.study_name=<name>, e.g. hpo.study_name=study_lr_sweep, and run the same command on "
        "every machine"
    )


def open_storage(
    url: str, heartbeat_interval_s: float = 30.0, stale_after_s: float = 300.0, on_stale: StaleCallback | None = None
) -> optuna.storages.BaseStorage:
    """The Optuna storage behind ``url`` (see the module docstring); heartbeats only on a database server."""
    if is_journal(url):
        return JournalStorage(JournalFileBackend(url.removeprefix(JOURNAL_SCHEME)))
    if not is_shared(url):
        return optuna.storages.RDBStorage(url)
    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=max(1, round(heartbeat_interval_s)),
            grace_period=max(2, round(stale_after_s)),
            heartbeat_stale_trial_callback=on_stale,
        )


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``. With heartbeats Optuna warns that they are meant for ``Study.optimize``, which
    runs the heartbeat thread for its trials; ``heartbeat`` below is that thread for ours."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed", category=UserWarning)
        return study.ask()


def has_heartbeat(storage: optuna.storages.BaseStorage | None) -> bool:
    return isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval() is not None


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's own stale-trial sweep (a no-op without heartbeats); each stale trial goes to the storage's
    ``on_stale``. The function is marked experimental in Optuna; its warning says nothing to a user."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@contextlib.contextmanager
def heartbeat(
    storage: optuna.storages.BaseStorage | None, study: optuna.Study, trial: optuna.Trial, interval_s: float
) -> Iterator[None]:
    """Record the running trial's heartbeat in the storage every ``interval_s`` (public ``RDBStorage`` API:
    the trial's storage id comes from the study's name and the trial's number). The first beat is written
    before the block runs. Nothing to do for a storage without heartbeats (or none)."""
    if not has_heartbeat(storage):
        yield
        return
    assert isinstance(storage, optuna.storages.RDBStorage)
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), trial.number
    )
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            try:
                storage.record_heartbeat(trial_id)
            except Exception as e:  # the database blinked: the next beat tries again
                log.warning(
                    "the database did not record trial %d's heartbeat (%s); the next beat tries again in %.0f s. "
                    "If it stays silent for hpo.stale_after_s, another worker re-queues the trial: check the "
                    "connection to the study's database",
                    trial.number,
                    e,
                    interval_s,
                )

    thread = threading.Thread(target=beat, name="trial-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
