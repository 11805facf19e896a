"""Opening a study to work on it: the one step the study process and a worker process joining it share."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import optuna

from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.loading import Corpus, load_corpus
from redsm5_hpo.hpo.storage import open_storage
from redsm5_hpo.hpo.study import create_study
from redsm5_hpo.pipeline.recovery import requeue_trial
from redsm5_hpo.pipeline.services import trial_stores
from redsm5_hpo.pipeline.study_record import StudyRecord
from redsm5_hpo.tracking.base import Tracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenStudy:
    """A study as a process works on it: who it is, where its files are, its storage and Optuna study."""

    config: Config
    study_id: str
    study_run: str
    """The study's MLflow run (trial runs nest under it; its series and test metrics go there)."""
    study_dir: Path
    storage: optuna.storages.BaseStorage
    study: optuna.Study


def open_study(config: Config, record: StudyRecord, study_dir: Path, tracker: Tracker) -> OpenStudy:
    """The study of ``record`` on its storage. On a database server a trial whose worker went silent
    (Optuna's heartbeat) is re-queued to continue from its newest checkpoint."""
    on_stale = functools.partial(requeue_trial, tracker=tracker, stores=trial_stores(config))
    storage = open_storage(record.storage, config.hpo.heartbeat_interval_s, config.hpo.stale_after_s, on_stale)
    study = create_study(config, record.study_name, storage)
    return OpenStudy(config, record.study_id, record.mlflow_run_id, Path(study_dir), storage, study)


def study_corpus(config: Config, study_id: str) -> Corpus:
    """The study's data (``data.source`` at its revision, split by ``seed``), said once in the log."""
    corpus = load_corpus(config.data, config.seed)
    splits = {k: len(v) for k, v in corpus.splits.items()}
    log.info("study %s: data %s@%s, splits %s", study_id, corpus.source, corpus.revision, splits)
    return corpus
