"""HPO: search space sampling, the Optuna study, and the objective that drives training."""
