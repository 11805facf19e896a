"""A trial's epochs as the study hears them: each objective goes to the pruner (and to the intermediate
values optuna-dashboard plots), and the study's first epoch gives its first ETA."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import optuna

from redsm5_hpo.config.schema import HpoConfig
from redsm5_hpo.hpo.confirm import CONFIRM, SEARCH
from redsm5_hpo.hpo.progress import early_eta, format_duration
from redsm5_hpo.hpo.trials import counted_trials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochReports:
    """Given to the training loop's pruning hook (``training.hooks.PruningHook``): the loop calls it down
    here, never back into the worker. A confirmation trial tells the pruner nothing, and neither it nor
    the baseline is ever pruned."""

    study: optuna.Study
    trial: optuna.Trial
    stage: str
    epochs: int
    hpo: HpoConfig

    def should_prune(self, epoch: int, value: float) -> bool:
        if epoch == 1:
            self._first_eta()
        if self.stage == CONFIRM:
            return False
        self.trial.report(value, epoch)
        return self.trial.should_prune() and self.stage == SEARCH

    def _first_eta(self) -> None:
        """Before any trial has finished, the first epoch gives the study its first ETA (the trials' own
        ETA takes over when one ends)."""
        if self.trial.datetime_start is None or counted_trials(self.study):
            return
        elapsed = (dt.datetime.now() - self.trial.datetime_start).total_seconds()
        eta = early_eta(elapsed, 1, self.epochs, self.hpo.planned_trials, max(1, self.hpo.n_workers))
        log.info(
            "progress: the first epoch took %s (set-up included); ETA %s from it, refined as trials end",
            format_duration(elapsed),
            format_duration(eta),
        )
