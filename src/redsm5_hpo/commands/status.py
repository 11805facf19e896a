"""``redsm5-hpo status``: what a study is doing now, read from another terminal without touching it.

``read_status`` gathers (the study's storage, its lock, the running trials' logs, the disk, the tracking
journal); ``describe`` turns that into the lines printed. Nothing is written: the lock is probed with a
shared, non-blocking ``flock`` on a read-only descriptor (``hpo.lock.is_locked``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from redsm5_hpo.checkpoints.disk import DiskLevel, DiskUsage, Thresholds, assess, disk_usage, human_bytes
from redsm5_hpo.commands.answer import aligned
from redsm5_hpo.config.schema import Config
from redsm5_hpo.errors import first_line
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.lock import is_locked
from redsm5_hpo.hpo.progress import early_eta, format_duration
from redsm5_hpo.hpo.slots import expected_trials
from redsm5_hpo.hpo.stopping import describe as describe_stop
from redsm5_hpo.hpo.storage import is_shared, open_storage
from redsm5_hpo.hpo.trials import study_progress_of, uncounted
from redsm5_hpo.layout import StudyDir, TrialDir, experiments_root, study_dirs
from redsm5_hpo.pipeline.services import JOURNAL_DIR
from redsm5_hpo.pipeline.study_record import StudyRecord
from redsm5_hpo.tracking.journal import pending_in

TAIL_BYTES = 65536


@dataclass
class RunningTrial:
    slot: int
    trial_id: str
    stage: str
    worker: int | None = None
    epoch: int | None = None
    last_metrics: str | None = None


@dataclass
class StudyStatus:
    study_id: str
    state: str
    """``finished``, ``running`` or ``stopped`` (crashed or interrupted: resumable)."""
    total: int
    epochs: int
    counts: dict[str, int]
    """completed / pruned / failed (counted trials), running, queued."""
    best: float | None
    eta_s: float | None
    running: list[RunningTrial] = field(default_factory=list)
    disk: DiskUsage | None = None
    disk_level: DiskLevel = DiskLevel.OK
    journal_pending: int = 0
    experiments: Path = Path(".")
    started: dt.datetime | None = None
    """When its first trial started (None before any)."""
    stopped: str | None = None
    """Why a stopping rule ended the study early (``hpo.timeout_s``, ``hpo.patience_trials``)."""


def read_status(study_dir: Path) -> StudyStatus:
    record = StudyRecord.read(study_dir)
    config: Config = record.resolved_config()
    study = optuna.load_study(study_name=record.study_name, storage=open_storage(record.storage))
    skip = uncounted(study)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number not in skip]
    states = optuna.trial.TrialState
    counts = {
        "completed": sum(t.state == states.COMPLETE for t in trials),
        "pruned": sum(t.state == states.PRUNED for t in trials),
        "failed": sum(t.state == states.FAIL and not t.user_attrs.get(attrs.RESUMABLE) for t in trials),
        "interrupted": sum(t.state == states.FAIL and bool(t.user_attrs.get(attrs.RESUMABLE)) for t in trials),
        "running": sum(t.state == states.RUNNING for t in trials),
        "queued": sum(t.state == states.WAITING for t in trials),
    }
    root = Path(study_dir).parent
    live = [t for t in trials if t.state == states.RUNNING]
    running = [_running_trial(t, config.hpo.n_workers > 1, root) for t in live]
    if StudyDir(study_dir).report_path.is_file() and not counts["running"] and not counts["queued"]:
        state = "finished"
    elif (is_shared(record.storage) and counts["running"]) or is_locked(study_dir):
        state = "running"
    else:
        state = "stopped"
    workers = max(1, config.hpo.n_workers)
    total = expected_trials(study, config.hpo)  # the plan, less what a stopping rule closed
    progress = study_progress_of(study, total, starting=False, workers=workers)
    eta = progress.eta_s
    started = [(t.datetime_start, r.epoch) for t, r in zip(live, running, strict=True) if r.epoch and t.datetime_start]
    if eta is None and started:  # no trial has ended yet: the running trial's epochs set the pace
        (since, epochs_done), left = started[0], total - progress.finished
        elapsed = (dt.datetime.now() - since).total_seconds()
        eta = early_eta(elapsed, epochs_done, config.train.epochs, left, workers)
    root = experiments_root(config)
    usage = disk_usage(root)
    guard = config.disk_guard
    journal = Path(config.tracking.journal_dir) if config.tracking.journal_dir else root / JOURNAL_DIR
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    return StudyStatus(
        record.study_id,
        state,
        total,
        config.train.epochs,
        counts,
        progress.best_so_far,
        eta if state == "running" else None,
        running,
        usage,
        assess(usage, Thresholds(guard.critical_free_fraction, guard.error_free_fraction)),
        pending_in(journal) if journal.is_dir() else 0,
        root,
        min(starts) if starts else None,
        _stopped(study, config),
    )


def _stopped(study: optuna.Study, config: Config) -> str | None:
    reason = study.user_attrs.get(attrs.STOPPED)
    return describe_stop(reason, config.hpo) if reason else None


def read_all(root: Path) -> list[StudyStatus | tuple[str, str]]:
    """Every study under ``root`` (oldest name first): its status, or (its name, why it cannot be read)."""
    found: list[StudyStatus | tuple[str, str]] = []
    for study in study_dirs(root):
        if not study.record_path.is_file():
            found.append((study.path.name, "no study.json"))
            continue
        try:
            found.append(read_status(study.path))
        except Exception as e:  # one broken study does not hide the others
            found.append((study.path.name, first_line(e)))
    return found


def describe_all(found: list[StudyStatus | tuple[str, str]], root: Path) -> str:
    """One row per study: id, state, trials done of requested (completed / pruned / failed), best, start."""
    if not found:
        return f"no study under {root} (`redsm5-hpo tune experiments_dir={root}` starts one)"
    header = ["study", "state", "trials", "completed/pruned/failed", "best", "started"]
    rows = [header]
    for entry in found:
        if isinstance(entry, tuple):
            rows.append([entry[0].removeprefix("study_"), f"unreadable: {entry[1]}", "", "", "", ""])
            continue
        c = entry.counts
        done = c["completed"] + c["pruned"] + c["failed"]
        rows.append(
            [
                entry.study_id,
                entry.state,
                f"{done}/{entry.total}",
                f"{c['completed']}/{c['pruned']}/{c['failed']}",
                "-" if entry.best is None else f"{entry.best:.4f}",
                "-" if entry.started is None else entry.started.strftime("%Y-%m-%d %H:%M"),
            ]
        )
    return "\n".join([*aligned(rows), f"{len(found)} study(ies) under {root}"])


def describe(status: StudyStatus) -> str:
    c = status.counts
    done = c["completed"] + c["pruned"] + c["failed"]
    lines = [f"study {status.study_id}: {status.state}"]
    if status.state == "stopped":
        hint = f"redsm5-hpo resume --study {status.study_id} experiments_dir={status.experiments}"
        lines[0] += f" (resumable: `{hint}`)"
    if status.stopped:
        lines[0] += f" (stopped early: {status.stopped})"
    interrupted = f"{c['interrupted']} interrupted (resumable), " if c.get("interrupted") else ""
    lines.append(
        f"trials: {done}/{status.total} done ({c['completed']} completed, {c['pruned']} pruned, {c['failed']} failed), "
        f"{interrupted}{c['running']} running, {c['queued']} queued"
    )
    for trial in status.running:
        worker = f", worker {trial.worker}" if trial.worker is not None else ""
        epoch = f"epoch {trial.epoch}/{status.epochs}" if trial.epoch is not None else "no epoch finished yet"
        metrics = f": {trial.last_metrics}" if trial.last_metrics else ""
        live = "running" if status.state == "running" else "interrupted"
        stage = "" if trial.stage == live else f", {trial.stage}"
        lines.append(f"  trial {trial.slot + 1} ({trial.trial_id[:8]}{worker}{stage}, {live}): {epoch}{metrics}")
    best = "none yet" if status.best is None else f"{status.best:.4f}"
    eta = f", ETA {format_duration(status.eta_s)}" if status.state == "running" else ""
    lines.append(f"best so far: {best}{eta}")
    if status.disk is not None:
        lines.append(
            f"disk under {status.experiments}: {human_bytes(status.disk.free_bytes)} free of "
            f"{human_bytes(status.disk.total_bytes)} ({status.disk.free_fraction:.1%}); disk guard: "
            f"{status.disk_level.name}"
        )
    lines.append(
        f"tracking journal: {status.journal_pending} record(s) not yet sent"
        + (
            f" (`redsm5-hpo sync experiments_dir={status.experiments}` sends them)"
            if status.journal_pending and status.state != "running"
            else ""
        )
    )
    return "\n".join(lines)


def _running_trial(trial: optuna.trial.FrozenTrial, several_workers: bool, root: Path) -> RunningTrial:
    worker = trial.user_attrs.get(attrs.WORKER) if several_workers else None
    found = RunningTrial(
        int(trial.user_attrs.get(attrs.SLOT, trial.number)),
        str(trial.user_attrs.get(attrs.TRIAL_ID, "?")),
        str(trial.user_attrs.get(attrs.LIFECYCLE, "starting")),
        int(worker["index"]) if isinstance(worker, dict) and "index" in worker else None,
    )
    trial_dir = trial.user_attrs.get(attrs.TRIAL_DIR)
    if trial_dir:
        found.epoch, found.last_metrics = _last_epoch(TrialDir.located(root, trial_dir).events)
    return found


def _last_epoch(log_path: Path) -> tuple[int | None, str | None]:
    """The newest ``epoch N: metrics`` record of a trial's JSON log (read from its end)."""
    if not log_path.is_file():
        return None, None
    with log_path.open("rb") as f:
        f.seek(max(0, log_path.stat().st_size - TAIL_BYTES))
        tail = f.read().decode("utf-8", errors="replace").splitlines()
    for line in reversed(tail):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        message = str(record.get("message", ""))
        if record.get("component") == "training.hooks" and message.startswith("epoch "):
            head, _, metrics = message.partition(": ")
            return int(head.split()[1]), metrics
    return None, None
