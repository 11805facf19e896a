"""The one place that assembles the parts: validate config, build parts, fit, close.

``run_single`` trains one configuration; ``run_study`` runs (or resumes) the HPO study and evaluates
the best trial on the test split exactly once; ``dry_run`` checks everything up to training;
``rollback_trial`` rewinds an interrupted trial.
"""

from redsm5_hpo.pipeline.evaluate import evaluate_best_trial, evaluate_checkpoint, evaluate_checkpoints
from redsm5_hpo.pipeline.recovery import rollback_trial
from redsm5_hpo.pipeline.study import StudyResult, find_study_dir, run_study
from redsm5_hpo.pipeline.trial import TrialResult, dry_run, run_single, run_trial

__all__ = [
    "StudyResult",
    "TrialResult",
    "dry_run",
    "evaluate_best_trial",
    "evaluate_checkpoint",
    "evaluate_checkpoints",
    "find_study_dir",
    "rollback_trial",
    "run_single",
    "run_study",
    "run_trial",
]
