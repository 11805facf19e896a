"""Where an experiments directory keeps a study's and a trial's files: the one owner of the layout.

```
experiments/
  study_<id>/  study.json (``pipeline.study_record.StudyRecord``), study_report.json, plots/, logs/,
               optuna.db or optuna.journal, .lock (the study lock), .claim.lock (claims of trial slots),
               .report_claim (which worker writes the report)
  trial_<id>/  config.yaml, evaluation_report.json, checkpoints/epoch_NNNN/, logs/events.jsonl
```

Every other module asks ``StudyDir`` and ``TrialDir`` where a file is, and reads and writes a trial's
``config.yaml`` and the reports through them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from redsm5_hpo.atomic_files import PRIVATE, write_text_atomic
from redsm5_hpo.config.loading import config_from_dict
from redsm5_hpo.config.schema import Config

STUDY_PREFIX = "study_"
TRIAL_PREFIX = "trial_"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
EVENTS = "events.jsonl"
"""The JSON-lines log of a trial (a study's processes each name theirs, see ``pipeline.study``)."""


def experiments_root(config: Config) -> Path:
    return Path(config.experiments_dir).resolve()


@dataclass(frozen=True)
class TrialDir:
    """``trial_<id>/``: a trial's configuration, validation report, checkpoints and logs."""

    path: Path

    @classmethod
    def of(cls, root: Path, trial_id: str) -> TrialDir:
        return cls(Path(root) / f"{TRIAL_PREFIX}{trial_id}")

    @classmethod
    def located(cls, root: Path, recorded: str | Path) -> TrialDir:
        """The trial directory a study recorded (a path on the machine that ran the trial) under ``root`` on
        this one: an experiments directory may move (another machine, a bigger disk) and keeps its layout."""
        return cls(Path(root) / Path(recorded).name)

    def checkpoint_at(self, reference: str | Path) -> Path:
        """Where a checkpoint a report references (by its path then) is in this trial directory now."""
        return self.checkpoints / Path(reference).name

    @property
    def trial_id(self) -> str:
        return self.path.name.removeprefix(TRIAL_PREFIX)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def report_path(self) -> Path:
        """``evaluation_report.json``: validation scores and calibrated thresholds (never test scores)."""
        return self.path / "evaluation_report.json"

    @property
    def test_path(self) -> Path:
        """A baseline or confirmation trial's own test scores (``hpo.confirm``)."""
        return self.path / "test_evaluation.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def logs(self) -> Path:
        return self.path / LOGS

    @property
    def events(self) -> Path:
        return self.logs / EVENTS

    def read_config(self) -> Config:
        """The configuration the trial trains with (a rollback may have changed it since it started)."""
        return config_from_dict(yaml.safe_load(self.config_path.read_text(encoding="utf-8")))

    def write_config(self, config: Config) -> Path:
        """Mode 0600: ``resume`` reads it back as it is, secrets and all."""
        text = yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)
        return write_text_atomic(self.config_path, text, PRIVATE)

    def read_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.report_path.read_text(encoding="utf-8"))
        return report


@dataclass(frozen=True)
class StudyDir:
    """``study_<id>/`` (or the directory ``hpo.study_name`` names): what a study keeps besides its trials."""

    path: Path

    @classmethod
    def of(cls, root: Path, name: str) -> StudyDir:
        return cls(Path(root) / name)

    @property
    def record_path(self) -> Path:
        """``study.json``: what identifies the study and lets any process resume or join it."""
        return self.path / "study.json"

    @property
    def report_path(self) -> Path:
        return self.path / "study_report.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def logs(self) -> Path:
        return self.path / LOGS

    @property
    def optuna_db(self) -> Path:
        """The Optuna storage of a one-worker study (SQLite)."""
        return self.path / "optuna.db"

    @property
    def optuna_journal(self) -> Path:
        """The Optuna storage of a study with several workers on one machine (Optuna's journal file)."""
        return self.path / "optuna.journal"

    @property
    def lock_path(self) -> Path:
        """Held (``flock``) by the one process that runs a study on a SQLite or journal storage."""
        return self.path / ".lock"

    @property
    def claim_lock_path(self) -> Path:
        """Workers sharing the directory take turns on it to claim a trial slot."""
        return self.path / ".claim.lock"

    @property
    def report_claim_path(self) -> Path:
        """Created exclusively by the one worker that writes the report of a shared study."""
        return self.path / ".report_claim"

    def read_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.report_path.read_text(encoding="utf-8"))
        return report

    def command(self, verb: str, *extra: str) -> str:
        """A command on this study that works pasted into any shell, in any directory: the study by its
        directory name, the experiments directory in full."""
        return " ".join(["redsm5-hpo", verb, "--study", self.path.name, *extra, f"experiments_dir={self.path.parent}"])


def trial_dirs(root: Path) -> list[TrialDir]:
    return [TrialDir(p) for p in sorted(Path(root).glob(f"{TRIAL_PREFIX}*")) if p.is_dir()]


def study_dirs(root: Path) -> list[StudyDir]:
    """The studies under ``root`` with the default name (``study_<id>``), by name."""
    return [StudyDir(p) for p in sorted(Path(root).glob(f"{STUDY_PREFIX}*")) if p.is_dir()]
