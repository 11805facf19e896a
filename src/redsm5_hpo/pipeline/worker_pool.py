"""``hpo.n_workers`` > 1: the study process starts worker processes on one storage and watches them.

Each worker (``redsm5-hpo worker``, ``worker.work_on_study``) claims waiting trials until none is left.
This process prints one progress line for the study, forwards SIGTERM / SIGINT to every worker (each
stops at its next batch, its trial resumable), re-queues the trial of a worker that died (killed, out of
memory) and starts another in its place, and stops the others when one fails. Workers run in their own
session, so Ctrl-C reaches them once, through here; on Linux each dies with this process
(``PR_SET_PDEATHSIG``), so no worker outlives the study process that watches it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from redsm5_hpo.checkpoints.disk import EXIT_DISK_FULL, DiskSpaceError
from redsm5_hpo.checkpoints.store import TrialStores
from redsm5_hpo.config.schema import HpoConfig
from redsm5_hpo.device_errors import EXIT_DEVICE_FAILED
from redsm5_hpo.devices import worker_gpu
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.progress import format_duration
from redsm5_hpo.hpo.trials import study_progress_of
from redsm5_hpo.interrupts import StopRequested, requested
from redsm5_hpo.layout import StudyDir
from redsm5_hpo.pipeline.recovery import requeue_interrupted_trials
from redsm5_hpo.processes import die_with_parent
from redsm5_hpo.tracking.base import TrackerWriter

log = logging.getLogger(__name__)

POLL_S = 1.0
PROGRESS_EVERY_S = 30.0
"""The progress line is logged when the study's state changes, and at least this often."""
LOG_TAIL_LINES = 15


@dataclass
class WorkerProcess:
    index: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self) -> str:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return "\n".join(f"  | {line}" for line in lines)


def worker_device(devices: Sequence[str], index: int, default: str | None) -> str | None:
    """Round robin over ``hpo.devices``; without them every worker uses ``default`` (or ``train.device``)."""
    return devices[index % len(devices)] if devices else default


def threads_per_worker(n_workers: int, cpus: int | None = None) -> int:
    """Each worker's share of the cores for torch's CPU threads (at least one)."""
    return max(1, (cpus or os.cpu_count() or 1) // n_workers)


def start_worker(study_dir: Path, index: int, device: str | None, threads: int) -> WorkerProcess:
    """A worker on ``device``; one on ``cuda:N`` sees only that GPU (``devices.worker_gpu``)."""
    log_path = StudyDir(study_dir).logs / f"worker-{index}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    gpu_env, inside = worker_gpu(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
    command = [sys.executable, "-m", "redsm5_hpo", "worker", "--study-dir", str(study_dir), "--index", str(index)]
    command += ["--threads", str(threads)] + (["--device", inside] if inside else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    env |= gpu_env
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    log.info(
        "worker %d started (pid %d, device %s%s, %d thread(s)); its log: %s",
        index,
        process.pid,
        device or "train.device",
        f" as CUDA_VISIBLE_DEVICES={gpu_env['CUDA_VISIBLE_DEVICES']}" if gpu_env else "",
        threads,
        log_path,
    )
    return WorkerProcess(index, process, log_path)


def run_workers(
    study: optuna.Study,
    study_dir: Path,
    hpo: HpoConfig,
    device: str | None,
    tracker: TrackerWriter,
    study_run: str,
    stores: TrialStores,
) -> int:
    """Run the study's waiting trials on ``hpo.n_workers`` processes (devices from ``hpo.devices``, else
    ``device``) until every one has exited. Raises ``StopRequested`` after a forwarded signal,
    ``DiskSpaceError`` or ``StudyError`` when a worker failed (the others are stopped, trials resumable).
    Returns how many trials its workers claimed."""
    n_workers, devices = hpo.n_workers, hpo.devices
    threads = threads_per_worker(n_workers)
    running = {i: start_worker(study_dir, i, worker_device(devices, i, device), threads) for i in range(n_workers)}
    restarts_left = n_workers
    forwarded: int | None = None
    failures: list[tuple[WorkerProcess, int]] = []
    pids = {w.process.pid for w in running.values()}
    line = ProgressLine(study, hpo.planned_trials, n_workers, tracker, study_run)
    while running:
        time.sleep(POLL_S)
        signum = requested()
        if signum is not None and forwarded is None:
            forwarded = signum
            for worker in running.values():
                worker.process.send_signal(signum)
        for index, worker in list(running.items()):
            code = worker.process.poll()
            if code is None:
                continue
            del running[index]
            if code == 0 or forwarded is not None:
                continue
            if code < 0 or code == EXIT_DEVICE_FAILED:  # killed from outside (SIGKILL, the OOM killer) or its
                pid = worker.process.pid  # GPU failed: its trial continues in a fresh process
                why = "its GPU failed" if code > 0 else f"killed by {signal.Signals(-code).name}"
                log.warning("worker %d (pid %d) ended: %s", index, pid, why)
                requeue_interrupted_trials(study, tracker, stores, _run_by(pid))
                if restarts_left and _waiting(study):
                    restarts_left -= 1
                    running[index] = start_worker(study_dir, index, worker_device(devices, index, device), threads)
                    pids.add(running[index].process.pid)
                continue
            failures.append((worker, code))
            forwarded = signal.SIGTERM  # the others stop at their next batch, resumable
            for other in running.values():
                other.process.send_signal(signal.SIGTERM)
        line.update()
    line.update(force=True)
    if failures:
        raise _failure(failures[0][0], failures[0][1], study_dir)
    if forwarded is not None:
        raise StopRequested(forwarded)
    return sum(1 for t in study.get_trials(deepcopy=False) if _worker_pid(t) in pids)


def _failure(worker: WorkerProcess, code: int, study_dir: Path) -> Exception:
    message = (
        f"worker {worker.index} stopped with exit code {code}; the other workers were stopped, their trials "
        f"resumable. Its log ({worker.log_path}) ends with:\n{worker.tail()}\n"
        f"Fix the cause, then `{StudyDir(study_dir).command('resume')}`."
    )
    if code == EXIT_DISK_FULL:
        return DiskSpaceError(f"disk full: {message}")
    return StudyError(message)


def _worker_pid(trial: optuna.trial.FrozenTrial) -> int | None:
    worker = trial.user_attrs.get(attrs.WORKER)
    return int(worker["pid"]) if isinstance(worker, dict) and "pid" in worker else None


def _run_by(pid: int) -> Callable[[optuna.trial.FrozenTrial], bool]:
    return lambda trial: _worker_pid(trial) == pid


def _waiting(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


class ProgressLine:
    """One line for the whole study: trials done / running (which worker runs which) / queued, best so
    far and ETA; logged when it changes (and every ``PROGRESS_EVERY_S``), and set as the study run's tags."""

    def __init__(self, study: optuna.Study, total: int, n_workers: int, tracker: TrackerWriter, study_run: str):
        self.study = study
        self.total = total
        self.n_workers = n_workers
        self.tracker = tracker
        self.study_run = study_run
        self.last_text = ""
        self.last_time = 0.0

    def update(self, force: bool = False) -> None:
        progress = study_progress_of(self.study, self.total, starting=False, workers=self.n_workers)
        live = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        waiting = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        running = []
        for trial in sorted(live, key=lambda t: t.number):
            worker = trial.user_attrs.get(attrs.WORKER, {})
            slot = int(trial.user_attrs.get(attrs.SLOT, trial.number)) + 1
            stage = trial.user_attrs.get(attrs.LIFECYCLE, "starting")
            running.append(f"w{worker.get('index', '?')}: trial {slot} {stage}")
        best = "none yet" if progress.best_so_far is None else f"{progress.best_so_far:.4f}"
        text = (
            f"study: {progress.finished}/{progress.total} trials done, {len(live)} running"
            f"{' (' + ', '.join(running) + ')' if running else ''}, {len(waiting)} queued, best so far {best}, "
            f"ETA {format_duration(progress.eta_s)}"
        )
        now = time.monotonic()
        if force or text != self.last_text or now - self.last_time >= PROGRESS_EVERY_S:
            fields = progress.as_dict() | {"running": len(live), "queued": len(waiting)}
            log.info("%s", text, extra={"progress": fields})
            self.tracker.set_tags(self.study_run, progress.as_tags())
            self.last_text, self.last_time = text, now
