"""B12 the winner's curse: on the bundled sample, the best search trial's validation objective at search time
vs the mean of its configuration trained again over 3 seeds (``hpo.confirm``), and the width of the test
macro-F1 interval (the percentile bootstrap over test posts)."""

from __future__ import annotations

from pathlib import Path

from redsm5_hpo.config.loading import load_config
from redsm5_hpo.pipeline import run_study

REPO = Path(__file__).resolve().parents[1]


def b12_winners_curse(workdir: Path, encoder: list[str], seeds: int = 3) -> dict:
    """The default study (``make train``'s search) with its best configuration confirmed over ``seeds``."""
    overrides = [*encoder, f"experiments_dir={workdir / 'b12'}", "hpo.confirm.top_k=1", f"hpo.confirm.seeds={seeds}"]
    config = load_config(overrides, REPO / "configs")
    report = run_study(config, progress=False).report
    assert report is not None
    (confirmed,) = report["confirmation"]["configurations"]
    low, high = report["test_intervals"]["test_criteria_macro_f1"]
    over_seeds = report["confirmation"]["winner_test"]["summary"]["test_criteria_macro_f1"]
    return {
        "search_trials": config.hpo.n_trials,
        "seeds": seeds,
        "metric": report["optimization_metric"],
        "search_value": confirmed["search_value"],
        "confirmed_mean": confirmed["validation"]["mean"],
        "confirmed_std": confirmed["validation"]["std"],
        "confirmed_values": [s["value"] for s in confirmed["seeds"]],
        "winners_curse": confirmed["search_value"] - confirmed["validation"]["mean"],
        "test_macro_f1": report["test_metrics"]["test_criteria_macro_f1"],
        "test_macro_f1_interval": [low, high],
        "test_macro_f1_interval_width": high - low,
        "test_macro_f1_over_seeds": over_seeds,
        "test_posts": report["dataset"]["splits"]["test"],
    }
