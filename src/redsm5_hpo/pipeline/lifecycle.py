"""A trial's lifecycle: how it starts, the stages it goes through, and the one observer that records
each stage in both places a user looks (the MLflow run's tags and the Optuna trial's user attrs)."""

from __future__ import annotations

import enum

import optuna

from redsm5_hpo.hpo import attrs
from redsm5_hpo.tracking.base import TrackerWriter


class TrialStart(enum.Enum):
    """How a trial starts."""

    FRESH = "fresh"
    """From epoch 0, in a new MLflow run."""
    RESUMED = "resumed"
    """From its newest valid checkpoint, in the MLflow run it was interrupted in."""
    ROLLED_BACK = "rolled_back"
    """From the earlier checkpoint a rollback kept, in a new MLflow run."""

    @property
    def from_checkpoint(self) -> bool:
        return self is not TrialStart.FRESH

    @property
    def same_run(self) -> bool:
        return self is TrialStart.RESUMED


class Stage(enum.StrEnum):
    """queued -> preparing -> running -> finishing -> completed | interrupted | pruned | failed."""

    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    FINISHING = "finishing"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    PRUNED = "pruned"
    FAILED = "failed"


class Lifecycle:
    """Records each stage a trial enters: the ``lifecycle`` tag of its MLflow run (once ``attach`` gave
    the run) with any extra tags, and the ``lifecycle`` user attr of its Optuna trial (when it has one)."""

    def __init__(self, trial: optuna.Trial | None = None) -> None:
        self.trial = trial
        self.tracker: TrackerWriter | None = None
        self.run_id: str | None = None

    def attach(self, tracker: TrackerWriter, run_id: str) -> None:
        """The trial's MLflow run exists: its stages go there too, and a study's trial records the run (a
        resume continues in it)."""
        self.tracker, self.run_id = tracker, run_id
        if self.trial is not None:
            self.trial.set_user_attr(attrs.RUN_ID, run_id)

    def enter(self, stage: Stage, **tags: str) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.set_tags(self.run_id, {"lifecycle": stage.value, **tags})
        if self.trial is not None:
            self.trial.set_user_attr(attrs.LIFECYCLE, stage.value)
