"""Observers of the loop: metric logging and checkpointing. They never change the loop's state."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from redsm5_hpo.checkpoints.manager import CheckpointManager
from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.evaluation.metrics import metric_direction
from redsm5_hpo.faults import fault_point
from redsm5_hpo.hub_token import TokenGate
from redsm5_hpo.tracking.base import TrackerWriter
from redsm5_hpo.training.loop import EpochResult, LoopState, resume_state

log = logging.getLogger(__name__)


class MetricsLoggingHook:
    """Logs every epoch's metrics once, at step = epoch, to the tracker and the log."""

    def __init__(
        self, tracker: TrackerWriter, run_id: str, optimization_metric: str, logged: set[tuple[str, int]] | None = None
    ):
        self.tracker = tracker
        self.run_id = run_id
        self.optimization_metric = optimization_metric
        self.logged = logged or set()
        """(metric, step) pairs the run already holds: a resumed run never logs one twice."""

    def on_epoch_end(self, state: LoopState, result: EpochResult) -> None:
        already = {k for k in result.metrics if (k, result.epoch) in self.logged}
        if already:  # a resumed run redoing an epoch it logged before dying: the values are the same
            log.info("epoch %d: %d metric(s) already in the tracker, not logged again", result.epoch, len(already))
        fresh = {k: v for k, v in result.metrics.items() if k not in already}
        if fresh:
            self.tracker.log_metrics(self.run_id, fresh, step=result.epoch)
        fault_point("tracking_write")
        log.info(
            "epoch %d: train_loss=%.4f %s=%.4f%s",
            result.epoch,
            result.metrics["train_loss"],
            self.optimization_metric,
            result.objective,
            " (best)" if result.is_best else "",
            extra={"step": result.epoch},
        )


class CheckpointHook:
    """Saves every ``checkpoint_interval_epochs`` (and at the last epoch) through the manager, which
    checks disk space first, snapshots the state and writes it in the background, then applies retention.
    Runs after metric logging, so a full disk never costs a metric. After each optimizer step it raises
    the error of a background write that failed, so a full disk stops the trial at once.

    With ``final_weights_only`` (the trial keeps only its best checkpoints once it ends) the last epoch is
    saved as weights only, and only when it is the best so far: its optimizer state would be deleted
    seconds later, and a checkpoint that is not the best could not be kept at all. A process that dies
    before the trial ends resumes from the previous epoch's checkpoint."""

    def __init__(
        self,
        manager: CheckpointManager,
        cfg: TrainConfig,
        meta: dict[str, Any],
        seed: int,
        token_gate: TokenGate | None = None,
        final_weights_only: bool = False,
    ):
        self.manager = manager
        self.token_gate = token_gate
        """Before each save it waits while the Hugging Face token is expired."""
        self.cfg = cfg
        self.meta = meta
        """Static manifest fields: architecture signature, head configuration, trial id, runtime."""
        self.seed = seed
        self.final_weights_only = final_weights_only

    def on_step_end(self, state: LoopState) -> None:
        self.manager.raise_if_failed()

    def on_epoch_end(self, state: LoopState, result: EpochResult) -> None:
        last = result.epoch == self.cfg.epochs
        if result.epoch % self.cfg.checkpoint_interval_epochs and not last:
            return
        weights_only = last and self.final_weights_only
        if weights_only and not result.is_best:
            return
        if self.token_gate:
            self.token_gate.wait_until_valid(f"the epoch {result.epoch} checkpoint")
        training_state = None
        if not weights_only:
            training_state = {**resume_state(state), "data_order": {"seed": self.seed, "next_epoch": result.epoch + 1}}
        meta = {
            **self.meta,
            "epoch": result.epoch,
            "step": result.global_step,
            "objective": result.objective,
            "direction": metric_direction(self.cfg.optimization_metric),
            "metrics": result.metrics,
        }
        self.manager.save(state.model, training_state, meta)


class TrialPruned(Exception):
    """The pruner stopped the trial after ``epoch`` (its checkpoint was not written)."""

    def __init__(self, epoch: int, value: float):
        super().__init__(f"pruned after epoch {epoch} ({value:.4f}): worse than what the pruner lets continue")
        self.epoch = epoch
        self.value = value


class Pruner(Protocol):
    """Whatever decides to stop a trial early (the study's ``hpo.pruning.EpochReports``)."""

    def should_prune(self, epoch: int, value: float) -> bool: ...


class PruningHook:
    """Reports each epoch's objective to the ``pruner`` and stops the trial when it says so. Runs after
    metric logging, before the checkpoint: a pruned epoch's metrics are kept, no checkpoint is written for
    it."""

    def __init__(self, pruner: Pruner):
        self.pruner = pruner

    def on_epoch_end(self, state: LoopState, result: EpochResult) -> None:
        if self.pruner.should_prune(result.epoch, result.objective):
            raise TrialPruned(result.epoch, result.objective)
