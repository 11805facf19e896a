"""Study-level retention: when trials finish, release the checkpoints that can no longer matter.

A finished trial that is not the study's best keeps nothing; the best trial keeps its best and
co-best checkpoints. While a trial runs, its checkpoints that do not beat the study's best are kept
only as resume points. Under disk pressure the study keeps only its single best checkpoint
and later trials get the aggressive policy. Running trials are never touched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from redsm5_hpo.checkpoints.disk import tree_bytes
from redsm5_hpo.checkpoints.loading import best_first
from redsm5_hpo.checkpoints.retention import AGGRESSIVE, RetentionPolicy, policy_from_config
from redsm5_hpo.checkpoints.store import CheckpointStore, TrialStores, trial_store
from redsm5_hpo.config.schema import RetentionConfig
from redsm5_hpo.evaluation.metrics import oriented
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.confirm import CONFIRM, SEARCH, Run, kept, search_best
from redsm5_hpo.hpo.trials import confirmation_done, logical_position, stage_of, study_direction, uncounted
from redsm5_hpo.layout import TrialDir
from redsm5_hpo.remote import BucketUnavailable

log = logging.getLogger(__name__)

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)


@dataclass(frozen=True)
class TrialSummary:
    number: int
    finished: bool
    value: float | None
    """The objective of a completed trial turned so that higher is better (``oriented``); None otherwise."""
    resumable: bool = False
    """Failed for a reason the user can fix and resume from (a full disk): its checkpoints stay."""
    diverged: bool = False
    """Failed with a non-finite loss: its resume point stays while it is the newest finished trial."""
    position: int | None = None
    """Its logical position (``hpo.study.logical_position``), which breaks ties; None = its number."""
    stage: str = SEARCH
    """``baseline``, ``search`` or ``confirm`` (``hpo.confirm``)."""
    group: int | None = None
    """A confirmation trial's configuration."""

    @property
    def rank(self) -> int:
        return self.number if self.position is None else self.position

    def as_run(self) -> Run:
        """As ``hpo.confirm`` decides over it (its parameters do not matter to retention)."""
        return Run(self.number, self.rank, self.stage, {}, self.value, self.group)


def select_release(
    trials: Sequence[TrialSummary], keep_diverged: bool = True, confirmation_done: bool = False
) -> tuple[set[int], set[int]]:
    """(trials whose checkpoints all go, the trials the study keeps). Among trials tied for the best value
    the one with the earliest logical position is the best (``hpo.study.best_trial``'s rule, whatever
    numbers interruptions gave the trials), so ties cannot make the kept set grow with the study. With
    ``hpo.confirm``, each confirmed configuration's best seed is kept too until the confirmation is done,
    then only the winner's (``hpo.confirm.kept``). A diverged trial keeps its last resume point (for a
    rollback) until another trial finishes, so at most one such trial holds disk at a time;
    ``keep_diverged=False`` (disk pressure) releases it too."""
    finished = [t for t in trials if t.finished]
    best = kept([t.as_run() for t in finished], confirmation_done)
    newest = max((t.number for t in finished), default=None)
    held = {t.number for t in finished if t.resumable or (keep_diverged and t.diverged and t.number == newest)}
    return {t.number for t in finished} - held - best, best


class StudyCheckpoints:
    """The study's view of every trial's checkpoints (trial directories come from Optuna user attrs, found
    under ``root``; with a bucket, their checkpoints are there too)."""

    def __init__(self, study: optuna.Study, config: RetentionConfig, stores: TrialStores):
        self.study = study
        self.config = config
        self.stores = stores
        self.escalated = False

    def policy(self) -> RetentionPolicy:
        """The policy for the next trial: the configured one, or aggressive once the disk was under pressure."""
        policy = policy_from_config(self.config)
        if self.escalated:
            return RetentionPolicy(AGGRESSIVE.keep_last_n, AGGRESSIVE.keep_best_k, policy.max_total_bytes, True)
        return policy

    def escalate(self) -> None:
        if not self.escalated:
            log.warning("disk pressure: later trials keep one resume point and one best checkpoint")
        self.escalated = True

    def running_trials(self) -> int:
        return max(1, len(self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))))

    def release_finished(self, force: bool = False) -> int:
        """Delete the checkpoints of finished trials that are not the study's best; return bytes freed."""
        if not (self.config.release_finished_trials or force):
            return 0
        dirs = self._trial_dirs()
        release, _ = select_release(self._summaries(), not force, confirmation_done(self.study))
        freed = 0
        for number in sorted(release & dirs.keys()):
            store = self.stores.store(dirs[number])
            if not store.list():  # released already (perhaps by another worker right now)
                continue
            with contextlib.suppress(FileNotFoundError):
                freed += tree_bytes(store.directory)
            try:
                store.delete_all()
            except BucketUnavailable as e:  # still listed: the next release (or `cleanup`) deletes it
                log.warning("could not release trial %d's checkpoints in the bucket yet: %s", number, e)
                continue
            _mark_released(dirs[number], self.stores.store(dirs[number]))
            log.info(
                "released the checkpoints of finished trial %d (%s): not the study's best",
                number,
                dirs[number].path.name,
            )
        return freed

    def keep_only_study_best(self) -> int:
        """Stage 3 of the disk guard: of all finished trials, only the single best checkpoint stays."""
        freed = self.release_finished(force=True)
        dirs = self._trial_dirs()
        _, best = select_release(self._summaries(), True, confirmation_done(self.study))
        stores = {number: self.stores.store(dirs[number]) for number in sorted(best & dirs.keys())}
        survivors = [(c, number) for number, store in stores.items() for c in store.list()]
        ranked = best_first([c for c, _ in survivors])
        owner = {id(c): number for c, number in survivors}
        for checkpoint in ranked[1:]:
            freed += checkpoint.size_bytes
            stores[owner[id(checkpoint)]].delete(checkpoint)
            log.warning("released %s: only the study's single best checkpoint is kept", checkpoint.path)
        for number in best & dirs.keys():
            _mark_released(dirs[number], self.stores.store(dirs[number]))
        return freed

    def must_beat(self, position: int | None) -> tuple[float, bool] | None:
        """The best finished trial's objective turned so that higher is better (as checkpoint scores), and
        whether a running trial at logical ``position`` would win a tie with it (it comes first); None
        before any trial completed, and for a confirmation trial (it competes with its own configuration's
        seeds, after it ends)."""
        summaries = self._summaries()
        if any(t.rank == position and t.stage == CONFIRM for t in summaries):
            return None
        best = search_best([t.as_run() for t in summaries if t.finished])
        if best is None or best.value is None:
            return None
        return best.value, position is not None and position < best.position

    def reclaimable_bytes(self) -> int:
        """What ``keep_only_study_best`` could free right now."""
        dirs = self._trial_dirs()
        finished = {t.number for t in self._summaries() if t.finished}
        checkpoints = [c for n in finished & dirs.keys() for c in trial_store(dirs[n]).list()]
        return sum(c.size_bytes for c in best_first(checkpoints)[1:])  # on this disk

    def _summaries(self) -> list[TrialSummary]:
        requeued = uncounted(self.study)
        direction = study_direction(self.study)
        trials = self.study.get_trials(deepcopy=False)
        return [
            TrialSummary(
                t.number,
                t.state in FINISHED and t.number not in requeued,
                oriented(t.value, direction)
                if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
                else None,
                bool(t.user_attrs.get(attrs.RESUMABLE)),
                bool(t.user_attrs.get(attrs.DIVERGED)),
                logical_position(t, trials),
                stage_of(t),
                t.user_attrs.get(attrs.CONFIRM_GROUP),
            )
            for t in trials
        ]

    def _trial_dirs(self) -> dict[int, TrialDir]:
        return {
            t.number: self.stores.trial(t.user_attrs[attrs.TRIAL_DIR])
            for t in self.study.get_trials(deepcopy=False)
            if attrs.TRIAL_DIR in t.user_attrs
        }


def _mark_released(trial: TrialDir, store: CheckpointStore) -> None:
    """Keep the trial report truthful: list only the checkpoints still kept (on the disk or in the bucket)."""
    if not trial.report_path.is_file():
        return
    report = trial.read_report()
    kept = {c.path.name for c in store.list()}
    remaining = [r for r in report["checkpoint_references"] if Path(r).name in kept]
    if remaining != report["checkpoint_references"]:
        write_report(
            trial.report_path, {**report, "checkpoint_references": remaining, "released": True}, "trial_report"
        )
