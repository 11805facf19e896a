"""B7 pruning: trial-epochs spent until the study reached its best validation score, with the median
pruner vs without, on the same seeded conditional search space (``hpo=conditional``)."""

from __future__ import annotations

from pathlib import Path

import optuna

from redsm5_hpo.config.loading import load_config
from redsm5_hpo.pipeline import run_study

REPO = Path(__file__).resolve().parents[1]


def _epochs_to_best(study: optuna.Study) -> tuple[int, float, int]:
    """(trial-epochs spent up to and including the first trial that reached the best value, best value,
    trial-epochs spent in all)."""
    best = study.best_value
    spent = total = 0
    reached = False
    for t in sorted(study.trials, key=lambda t: t.number):
        epochs = len(t.intermediate_values)
        total += epochs
        if not reached:
            spent += epochs
            reached = t.state == optuna.trial.TrialState.COMPLETE and t.value == best
    return spent, best, total


def _run(root: Path, pruner: str, overrides: list[str]) -> dict:
    config = load_config([*overrides, f"experiments_dir={root}", f"hpo.pruner={pruner}"], REPO / "configs")
    result = run_study(config, progress=False)
    study = optuna.load_study(study_name=f"study_{result.study_id}", storage=f"sqlite:///{result.study_dir}/optuna.db")
    spent, best, total = _epochs_to_best(study)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return {"epochs_to_best": spent, "best_value": best, "epochs_total": total, "pruned_trials": pruned}


def b7_pruning(workdir: Path, encoder: list[str], n_trials: int = 10, epochs: int = 4) -> dict:
    overrides = [
        "model=tiny",  # the tiny encoder: twice 10 trials x 4 full epochs fit the bench budget
        "hpo=conditional",
        f"hpo.n_trials={n_trials}",
        f"train.epochs={epochs}",
        "train.optimization_metric=val_criteria_macro_pr_auc",
        "hpo.pruner_startup_trials=2",
    ]
    without = _run(workdir / "b7_none", "none", overrides)
    median = _run(workdir / "b7_median", "median", overrides)
    return {
        "n_trials": n_trials,
        "epochs_per_trial": epochs,
        "without_pruner": without,
        "median_pruner": median,
        "epochs_to_best_reduction": 1 - median["epochs_to_best"] / without["epochs_to_best"],
        "epochs_total_reduction": 1 - median["epochs_total"] / without["epochs_total"],
    }
