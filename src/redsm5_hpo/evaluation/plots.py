"""Study plots as PNG: optimization history, parameter importances, intermediate values (the
per-epoch objective each trial reported to the pruner) and the best trial's learning curves."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from redsm5_hpo.errors import first_line

log = logging.getLogger(__name__)


def write_study_plots(
    study: optuna.Study, directory: Path, best_history: Sequence[dict[str, float]], objective: str
) -> list[Path]:
    """Write what the study's data supports; a plot it cannot draw yet (e.g. importances before two
    trials completed) is skipped with an INFO line saying why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    drawers: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: optuna_plots.plot_optimization_history(study, target_name=objective),
        "param_importances": lambda: optuna_plots.plot_param_importances(study, target_name=objective),
        "intermediate_values": lambda: optuna_plots.plot_intermediate_values(study),
        "learning_curves": lambda: _learning_curves(plt, best_history, objective),
    }
    for name, draw in drawers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
        except Exception as e:  # plots are a convenience: never fail a study over one
            log.info("plot %s skipped: %s", name, first_line(e))
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def _learning_curves(plt: Any, history: Sequence[dict[str, float]], objective: str) -> Any:
    if not history:
        raise ValueError("the best trial has no per-epoch history")
    epochs = list(range(1, len(history) + 1))
    _, left = plt.subplots(figsize=(6, 4))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train_loss")
    if "val_loss" in history[0]:
        left.plot(epochs, [h["val_loss"] for h in history], marker="o", label="val_loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    right = left.twinx()
    right.plot(epochs, [h[objective] for h in history], marker="s", color="tab:green", label=objective)
    right.set_ylabel(objective)
    lines = left.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], loc="best")
    left.set_title("best trial: learning curves")
    return left
