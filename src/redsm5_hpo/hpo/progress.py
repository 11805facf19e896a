"""Study progress: trial index / total, completion rate, best so far and ETA, and the study's series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from redsm5_hpo.evaluation.metrics import Direction, best_of


@dataclass(frozen=True)
class Progress:
    trial: int
    """1-based index of the trial that starts (or just ended)."""
    total: int
    finished: int
    best_so_far: float | None
    eta_s: float | None
    """Mean duration of the finished trials times the trials left; None before the first one ends."""

    @property
    def completion_rate(self) -> float:
        return self.finished / self.total if self.total else 1.0

    def as_tags(self) -> dict[str, str]:
        return {
            "progress.trial": f"{self.trial}/{self.total}",
            "progress.completion_rate": f"{self.completion_rate:.3f}",
            "progress.best_so_far": "none" if self.best_so_far is None else f"{self.best_so_far:.6g}",
            "progress.eta_s": "unknown" if self.eta_s is None else f"{self.eta_s:.0f}",
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "trial": self.trial,
            "total": self.total,
            "finished": self.finished,
            "completion_rate": round(self.completion_rate, 4),
            "best_so_far": self.best_so_far,
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
        }

    def describe(self) -> str:
        best = "none yet" if self.best_so_far is None else f"{self.best_so_far:.4f}"
        return (
            f"progress: trial {self.trial}/{self.total}, {self.completion_rate:.0%} done, best so far {best}, "
            f"ETA {format_duration(self.eta_s)}"
        )


def study_progress(
    trial: int,
    total: int,
    durations_s: Sequence[float],
    values: Sequence[float | None],
    direction: Direction = "maximize",
    workers: int = 1,
) -> Progress:
    """``durations_s`` of the finished trials (this study, any process), ``values`` their objective values,
    the best of which in ``direction`` is the best so far. The ETA is the mean duration times the trials
    left, run ``workers`` at a time."""
    finished = len(durations_s)
    scored = [v for v in values if v is not None and not math.isnan(v)]
    left = max(total - finished, 0)
    eta = sum(durations_s) / finished * math.ceil(left / max(1, min(workers, left or 1))) if finished else None
    return Progress(trial, total, finished, best_of(scored, direction), eta)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@dataclass(frozen=True)
class HistoryPoint:
    """The study after its trial ``trial`` (1-based index, the ``k`` of ``trial k/N``) finished."""

    trial: int
    number: int
    """The trial's Optuna number (a continuation gets a new one; ``trial`` stays)."""
    state: str
    """complete, pruned or fail."""
    value: float | None
    best_so_far: float | None
    """The best value among the finished trials 1..``trial``."""
    completed: int
    """How many of the finished trials 1..``trial`` completed."""


def best_value_history(
    outcomes: Sequence[tuple[int, int, str, float | None]], direction: Direction = "maximize"
) -> list[HistoryPoint]:
    """One point per finished trial, ``outcomes`` being (index, number, state, value) in index order: the
    study's best-value series, stepped 1..n whatever numbers Optuna gave its trials."""
    points: list[HistoryPoint] = []
    best: float | None = None
    completed = 0
    for index, number, state, value in outcomes:
        if state == "complete" and value is not None:
            best = best_of([value] if best is None else [best, value], direction)
            completed += 1
        points.append(HistoryPoint(index, number, state, value, best, completed))
    return points


def study_time_estimate(
    step_s: float, train_batches: int, validation_batches: int, epochs: int, trials: int, workers: int = 1
) -> float:
    """A study's training time from one measured training step: per epoch, its training steps plus the
    validation pass (a forward pass: about a third of a step), for every epoch of every trial, ``workers``
    trials at a time. Set-up, checkpoints and the test evaluation are not in it."""
    epoch_s = step_s * (train_batches + validation_batches / 3)
    return epoch_s * epochs * math.ceil(trials / max(1, workers))


def early_eta(elapsed_s: float, epochs_done: int, epochs: int, trials_left: int, workers: int = 1) -> float | None:
    """The ETA before any trial has finished, from the running trial: ``elapsed_s`` for its first
    ``epochs_done`` of ``epochs`` epochs sets a trial's length; ``trials_left`` counts the running one."""
    if epochs_done <= 0 or epochs <= 0 or trials_left <= 0:
        return None
    per_trial = elapsed_s / epochs_done * epochs
    rounds = math.ceil(trials_left / max(1, min(workers, trials_left)))
    return max(0.0, per_trial * rounds - elapsed_s)
