"""``redsm5-hpo rollback``: return an interrupted or failed trial to an earlier retained checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from redsm5_hpo.checkpoints.store import verify
from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.lock import study_lock
from redsm5_hpo.hpo.slots import queue_behind_continuations
from redsm5_hpo.hpo.study import create_study
from redsm5_hpo.hpo.trials import uncounted
from redsm5_hpo.layout import StudyDir
from redsm5_hpo.pipeline.recovery import held_slot
from redsm5_hpo.pipeline.services import open_tracker, trial_stores
from redsm5_hpo.pipeline.study_record import StudyRecord


def rollback_trial(study_dir: Path, trial_id: str, epoch: int, overrides: dict[str, Any]) -> str:
    """Roll an interrupted or failed trial back to its retained resumable checkpoint of ``epoch``: newer
    checkpoints are deleted, ``overrides`` (e.g. a lower ``train.lr_head``) go into the trial's config, and
    the trial is re-queued to continue from that epoch in a new MLflow run (tagged ``rolled_back_from``)
    at the next ``resume``. Returns a summary line."""
    record = StudyRecord.read(study_dir)
    with study_lock(study_dir):
        study = create_study(record.resolved_config(), record.study_name, record.storage)
        requeued = set(study.user_attrs.get(attrs.REQUEUED_TRIALS, []))
        matches = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(attrs.TRIAL_ID) == trial_id]
        if not matches:
            raise StudyError(f"no trial {trial_id} in study {record.study_id}")
        trial = matches[-1]
        interrupted = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL)
        if trial.state not in interrupted or trial.number in uncounted(study):
            raise StudyError(
                f"trial {trial_id} is {trial.state.name}: only an interrupted or failed trial can be rolled back "
                "(stop the study first; a completed trial is final)"
            )
        stores = trial_stores(record.resolved_config(), Path(study_dir).parent)
        files = stores.trial(trial.user_attrs[attrs.TRIAL_DIR])
        store = stores.store(files)
        resumable = [c for c in store.list() if c.resumable]
        target = [c for c in resumable if c.epoch == epoch]
        if not target:
            raise StudyError(
                f"trial {trial_id} has no resumable checkpoint of epoch {epoch} (retained: "
                f"{[c.epoch for c in resumable] or 'none'}). Earlier resume points exist only when the study runs "
                "with e.g. retention_policy.keep_last_n=3."
            )
        verify(target[0])
        trial_config = files.read_config()
        if overrides:
            trial_config = apply_overrides(trial_config, overrides)
            files.write_config(trial_config)
        for checkpoint in store.list():
            if checkpoint.epoch > epoch:
                store.delete(checkpoint)
        if trial.state == optuna.trial.TrialState.RUNNING:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        study.set_user_attr(attrs.REQUEUED_TRIALS, sorted(requeued | {trial.number}))
        study.enqueue_trial(
            trial.params, user_attrs={attrs.RESUME_OF: trial.number, attrs.ROLLBACK_EPOCH: epoch, **held_slot(trial)}
        )
        queue_behind_continuations(study)
        if attrs.RUN_ID in trial.user_attrs:  # its metrics stay as they were; the trial continues in a new run
            with open_tracker(trial_config) as tracker:
                tracker.end_run(trial.user_attrs[attrs.RUN_ID], "KILLED")
    changed = f" with {overrides}" if overrides else ""
    resume = StudyDir(Path(study_dir)).command("resume")
    return f"trial {trial_id} rolled back to epoch {epoch}{changed}; `{resume}` continues it from there"
