"""Observers of the loop: metric logging and checkpointing. They never change the loop's state."""

from __future__ import annotations

import logging
from typing import Any

from redsm5_hpo.checkpoints.retention import select_checkpoints_to_keep
from redsm5_hpo.checkpoints.store import CheckpointStore, StoredCheckpoint
from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.tracking.base import Tracker
from redsm5_hpo.training.loop import EpochResult, LoopState

log = logging.getLogger(__name__)


class MetricsLoggingHook:
    """Logs every epoch's metrics once, at step = epoch, to the tracker and the log."""

    def __init__(self, tracker: Tracker, run_id: str, optimization_metric: str):
        self.tracker = tracker
        self.run_id = run_id
        self.optimization_metric = optimization_metric

    def on_epoch_end(self, state: LoopState, result: EpochResult) -> None:
        self.tracker.log_metrics(self.run_id, result.metrics, step=result.epoch)
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
    """Saves every ``checkpoint_interval_epochs`` (and at the last epoch), then applies retention."""

    def __init__(self, store: CheckpointStore, cfg: TrainConfig, meta: dict[str, Any]):
        self.store = store
        self.cfg = cfg
        self.meta = meta
        """Static manifest fields: architecture signature and head configuration."""

    def on_epoch_end(self, state: LoopState, result: EpochResult) -> None:
        due = result.epoch % self.cfg.checkpoint_interval_epochs == 0 or result.epoch == self.cfg.epochs
        if not due:
            return
        training_state = {
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "epoch": result.epoch,
            "global_step": result.global_step,
        }
        meta = {
            **self.meta,
            "epoch": result.epoch,
            "step": result.global_step,
            "objective": result.objective,
            "metrics": result.metrics,
        }
        saved = self.store.save(state.model, training_state, meta)
        log.info("saved checkpoint %s", saved.path, extra={"step": result.epoch})
        self.prune()

    def prune(self) -> list[StoredCheckpoint]:
        """Delete what the retention rule does not keep; return what is left."""
        checkpoints = self.store.list()
        keep = select_checkpoints_to_keep([c.record for c in checkpoints], self.cfg.keep_last_n, self.cfg.keep_best_k)
        for checkpoint in checkpoints:
            if checkpoint.epoch not in keep:
                self.store.delete(checkpoint)
                log.info("pruned checkpoint %s", checkpoint.path)
        return [c for c in checkpoints if c.epoch in keep]
