"""``study.json``: what identifies a study and lets any process resume it or join it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from redsm5_hpo.atomic_files import PRIVATE, write_json_atomic
from redsm5_hpo.config.loading import config_from_dict
from redsm5_hpo.config.schema import Config
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.storage import relocated
from redsm5_hpo.hpo.study import create_study
from redsm5_hpo.layout import STUDY_PREFIX, StudyDir, experiments_root, study_dirs
from redsm5_hpo.pipeline.mirroring import pull
from redsm5_hpo.remote import open_bucket


@dataclass(frozen=True)
class StudyRecord:
    """The contents of ``study_<id>/study.json``. It holds the resolved configuration with its secrets in
    clear (a resume needs them), so it is written with mode 0600."""

    study_id: str
    study_name: str
    storage: str
    """The Optuna storage URL (SQLite, ``journal://...`` or a database server)."""
    mlflow_run_id: str
    """The study's parent MLflow run."""
    config: dict[str, Any]

    @classmethod
    def read(cls, study_dir: Path) -> StudyRecord:
        saved = json.loads(StudyDir(Path(study_dir)).record_path.read_text(encoding="utf-8"))
        return cls(
            str(saved["study_id"]),
            str(saved["study_name"]),
            relocated(str(saved["storage"]), Path(study_dir)),
            str(saved["mlflow_run_id"]),
            dict(saved["config"]),
        )

    def write(self, study_dir: Path) -> Path:
        return write_json_atomic(StudyDir(Path(study_dir)).record_path, dataclasses.asdict(self), PRIVATE)

    def resolved_config(self) -> Config:
        """The saved configuration. A study saved before ``hpo.baseline_trial`` existed ran no baseline
        trial: the key's absence means false for it, whatever today's default."""
        hpo = self.config.get("hpo", {})
        if "baseline_trial" not in hpo:
            return config_from_dict({**self.config, "hpo": {**hpo, "baseline_trial": False}})
        return config_from_dict(self.config)

    def with_config(self, config: Config) -> StudyRecord:
        return dataclasses.replace(self, config=dataclasses.asdict(config))


def open_saved_study(study_dir: Path) -> tuple[StudyRecord, Config, optuna.Study]:
    """A study's record, the resolved config saved in it, and its Optuna study."""
    record = StudyRecord.read(study_dir)
    config = record.resolved_config()
    return record, config, create_study(config, record.study_name, record.storage)


def find_study_dir(config: Config, study: str | None) -> Path:
    """``experiments/study_<id>`` for ``study`` (an id or a directory name), else the newest study."""
    root = experiments_root(config)
    bucket = open_bucket(config.remote)
    if bucket is not None:  # a study another machine ran: its files from the bucket (those missing here)
        for name in [study, f"{STUDY_PREFIX}{study}"] if study else [None]:
            if pull(bucket, root, name):
                break
    if study:
        for candidate in (StudyDir.of(root, study), StudyDir.of(root, f"{STUDY_PREFIX}{study}")):
            if candidate.record_path.is_file():
                return candidate.path
        looked = StudyDir.of(root, study).record_path.name
        raise StudyError(f"no study {study!r} under {root} (looked for {looked}); list them with `ls {root}`")
    studies = sorted(
        (d for d in study_dirs(root) if d.record_path.is_file()), key=lambda d: d.record_path.stat().st_mtime
    )
    if not studies:
        raise StudyError(f"no study under {root}; start one with `redsm5-hpo tune experiments_dir={root}`")
    return studies[-1].path
