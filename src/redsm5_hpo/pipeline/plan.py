"""What a study run works from, settled before any work: the configuration (new, or a resumed study's saved
one with the resume-safe overrides), the study's identity, directory and storage, its warm start, and
whether a resume may extend it."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.resume import override_keys, resume_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.config.search_space import warm_start_params
from redsm5_hpo.config.validation import tune_problems
from redsm5_hpo.devices import Runtime, resolve_runtime
from redsm5_hpo.evaluation.metrics import metric_direction, oriented
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.storage import default_storage, is_shared, unnamed_shared_study
from redsm5_hpo.layout import STUDY_PREFIX, StudyDir, experiments_root
from redsm5_hpo.pipeline.mirroring import pull
from redsm5_hpo.pipeline.study_record import StudyRecord
from redsm5_hpo.remote import open_bucket
from redsm5_hpo.tracking.sanitize import MASK

log = logging.getLogger(__name__)


def _with_storage(saved: StudyRecord, storage: str | None, study_dir: Path) -> StudyRecord:
    """The record of a study joined from the bucket, whose storage URL has its password masked there: the
    URL this machine was given, written back to its local record (mode 0600, which its workers read)."""
    if not storage or MASK in storage:
        raise ConfigError(
            [
                f"hpo.storage: the study's storage URL came from the bucket with its password masked "
                f"({saved.storage}); pass hpo.storage=<url> as the machine that created the study did"
            ]
        )
    raw = {**saved.config, "hpo": {**saved.config.get("hpo", {}), "storage": storage}}
    record = dataclasses.replace(saved, storage=storage, config=raw)
    record.write(study_dir)
    return record


@dataclass(frozen=True)
class StudyPlan:
    """What a study run works from, settled before any work: its configuration, identity and storage."""

    config: Config
    saved: StudyRecord | None
    """The study's record when it is resumed (or joined); None for a new study."""
    changed: dict[str, Any]
    """Settings a resume changed (``config.resume``), saved back into the record."""
    study_name: str
    study_dir: Path
    storage_url: str
    runtime: Runtime
    device: str | None
    keys: tuple[str, ...] = ()
    """The keys the user set on the command line (a resume passing ``hpo.timeout_s`` starts a new budget)."""
    warm: tuple[list[dict[str, Any]], str] = ([], "")
    """A new study's ``hpo.warm_start`` parameter sets and the report they came from (checked before any work)."""

    @property
    def study_id(self) -> str:
        return self.study_name.removeprefix(STUDY_PREFIX)

    @property
    def shared(self) -> bool:
        """A database server: several machines may run this study at once (no study lock)."""
        return is_shared(self.storage_url)

    @property
    def files(self) -> StudyDir:
        return StudyDir(self.study_dir)

    @property
    def log_name(self) -> str:
        return f"events.{socket.gethostname()}-{os.getpid()}.jsonl" if self.shared else "events.jsonl"


def plan_study(config: Config, resume_dir: Path | None, device: str | None, overrides: Sequence[str]) -> StudyPlan:
    """New or resumed: a directory holding ``study.json`` (``resume_dir``, or the ``hpo.study_name`` of an
    existing study) is continued with its saved configuration plus the resume-safe ``overrides``."""
    root = experiments_root(config)
    bucket = open_bucket(config.remote)
    named = config.hpo.study_name
    if resume_dir is None and named and bucket and not StudyDir.of(root, named).record_path.is_file():
        pull(bucket, root, named)  # another machine created it: join it (its files come from the bucket)
    if resume_dir is None and config.hpo.study_name and StudyDir.of(root, config.hpo.study_name).record_path.is_file():
        resume_dir = root / config.hpo.study_name
    saved = StudyRecord.read(resume_dir) if resume_dir else None
    if saved and resume_dir and MASK in saved.storage:  # its record came from the bucket, password masked
        saved = _with_storage(saved, config.hpo.storage, resume_dir)
    problems = tune_problems(config)
    if saved is None and (unnamed := unnamed_shared_study(config.hpo.storage, config.hpo.study_name)):
        problems.append(unnamed)
    if problems:
        raise ConfigError(problems)
    changed: dict[str, Any] = {}
    if saved:
        config, changed = resume_config(saved.resolved_config(), config, override_keys(overrides))
        config = dataclasses.replace(config, experiments_dir=str(root))  # where it is now (moved, another machine)
    runtime = resolve_runtime(config.train, device)  # a missing device fails before any work
    study_name = saved.study_name if saved else config.hpo.study_name or f"{STUDY_PREFIX}{uuid.uuid4().hex}"
    study_dir = StudyDir.of(root, study_name).path
    storage_url = saved.storage if saved else config.hpo.storage or default_storage(study_dir, config.hpo.n_workers)
    if saved and config.hpo.n_trials < saved.resolved_config().hpo.n_trials:
        raise ConfigError(
            [
                f"hpo.n_trials: a resumed study can run more trials, not fewer (it was started with "
                f"{saved.resolved_config().hpo.n_trials})"
            ]
        )
    keys = tuple(override_keys(overrides))
    warm = warm_start_sets(config) if saved is None else ([], "")  # an unknown study fails before any work
    return StudyPlan(config, saved, changed, study_name, study_dir, storage_url, runtime, device, keys, warm)


def warm_start_sets(config: Config) -> tuple[list[dict[str, Any]], str]:
    """``hpo.warm_start``: the earlier study's best distinct parameter sets for this search space (none
    without it), and the report they came from. A study id is looked up under ``experiments_dir``."""
    source = config.hpo.warm_start
    if not source:
        return [], ""
    root = experiments_root(config)
    found = [
        p for p in (Path(source), *(StudyDir.of(root, n).report_path for n in (source, f"{STUDY_PREFIX}{source}")))
    ]
    path = next((p for p in found if p.is_file()), None)
    if path is None:
        raise StudyError(
            f"hpo.warm_start={source}: no study report there or under {root} (looked for "
            f"{StudyDir.of(root, f'{STUDY_PREFIX}{source}').report_path}); name a finished study's id or its "
            "study_report.json"
        )
    report = json.loads(path.read_text(encoding="utf-8"))
    direction = metric_direction(report["optimization_metric"])
    candidates = [
        (oriented(float(h["value"]), direction), dict(h.get("params") or {}))
        for h in report["summary"]["best_value_history"]
        if h["state"] == "complete" and h["value"] is not None
    ]
    sets = warm_start_params(candidates, config.hpo.search_space, config.hpo.warm_start_top_k)
    log.info("warm start from %s: its %d best parameter set(s) run first: %s", path, len(sets), sets)
    return sets, str(path)


STOPPING_KEYS = ("hpo.timeout_s", "hpo.patience_trials", "hpo.min_improvement")


def extends(plan: StudyPlan) -> bool:
    """The resume gives the study more search trials (``resume hpo.n_trials=N``)."""
    return plan.saved is not None and plan.config.hpo.n_trials > plan.saved.resolved_config().hpo.n_trials


def require_extensible(study: optuna.Study, plan: StudyPlan) -> None:
    """More search trials only before the confirmation was queued: trials searched after it would not be
    among the configurations it confirmed."""
    if study.user_attrs.get(attrs.CONFIRM_QUEUED) is not None:
        raise StudyError(
            f"study {plan.study_id} has confirmed its best configurations over seeds: more search trials would "
            f"come after them. Start a new study from its best ones: "
            f"`redsm5-hpo tune hpo.warm_start={plan.study_id} experiments_dir={plan.study_dir.parent}`"
        )
