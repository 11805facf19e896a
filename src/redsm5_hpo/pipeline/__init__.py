"""The study's wiring: plan it, run its trials (in this process or a pool of worker processes), score the
answer on test once, write the report.

``run_single`` trains one configuration; ``run_study`` runs (or resumes) the HPO study and evaluates
the best trial on the test split exactly once; ``dry_run`` checks everything up to training. What a user
runs after a study (status, ui, verify, report, evaluate, export, predict, rollback) is in
``redsm5_hpo.commands``.
"""

from redsm5_hpo.pipeline.scoring import evaluate_best_trial, evaluate_checkpoint, evaluate_checkpoints
from redsm5_hpo.pipeline.study import StudyResult, run_study
from redsm5_hpo.pipeline.study_record import find_study_dir
from redsm5_hpo.pipeline.trial import TrialResult, dry_run, run_single, run_trial

__all__ = [
    "StudyResult",
    "TrialResult",
    "dry_run",
    "evaluate_best_trial",
    "evaluate_checkpoint",
    "evaluate_checkpoints",
    "find_study_dir",
    "run_single",
    "run_study",
    "run_trial",
]
