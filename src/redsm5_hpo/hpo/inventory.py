"""Which trial directories the studies under an experiments directory know, and in which state."""

from __future__ import annotations

from pathlib import Path

import optuna

from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.storage import default_storage, open_storage
from redsm5_hpo.layout import TrialDir, study_dirs


def trial_states(root: Path, storages: list[str] | None = None) -> dict[Path, str]:
    """``{trial_dir: state}`` over every study in ``study_*/optuna.db`` or ``study_*/optuna.journal`` and the
    given storage URLs; the state is Optuna's name (``RUNNING``, ``COMPLETE``, ``FAIL``...) or ``RESUMABLE``
    for a failure to resume from."""
    urls = []
    for directory in study_dirs(root):
        urls += [default_storage(directory.path, 1)] if directory.optuna_db.is_file() else []
        urls += [default_storage(directory.path, 2)] if directory.optuna_journal.is_file() else []
    states: dict[Path, str] = {}
    for url in urls + list(storages or []):
        storage = open_storage(url)
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            for trial in study.get_trials(deepcopy=False):
                if attrs.TRIAL_DIR in trial.user_attrs:
                    state = "RESUMABLE" if trial.user_attrs.get(attrs.RESUMABLE) else trial.state.name
                    states[TrialDir.located(root, trial.user_attrs[attrs.TRIAL_DIR]).path.resolve()] = state
    return states
