"""The baseline and confirmation trials on test, and their part of the study report (``hpo.confirm``).

A confirmation trial (and, with confirmation on, the baseline trial) scores its own best checkpoint on
test when it ends, before retention releases it: the winner is chosen on validation only, and its seeds'
test scores are then read from their trial directories. The report gives, for every confirmed
configuration, its search-time objective beside the mean and spread over its seeds (the winner's curse,
in numbers), the winner's per-seed test metrics with their mean, spread and interval over seeds, and the
answer's gain over the baseline trial.
"""

from __future__ import annotations

import json
from typing import Any

import optuna

from redsm5_hpo.checkpoints.store import TrialStores
from redsm5_hpo.config.schema import Config
from redsm5_hpo.evaluation.metrics import oriented
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.confirm import BASELINE, CONFIRM, SEARCH, Group, groups, spread, top_configurations, winner
from redsm5_hpo.hpo.trials import best_trial, confirmation_done, study_direction, study_runs, trial_params

HEADLINE = ("test_criteria_macro_f1", "test_criteria_micro_f1", "test_evidence_f1")
"""The test metrics the gain over the baseline is stated for."""


def scores_test_itself(stage: str, config: Config) -> bool:
    """A confirmation trial, and the baseline trial when the study confirms, score themselves on test."""
    return stage == CONFIRM or (stage == BASELINE and config.hpo.confirm.top_k > 0)


def _test_metrics(trial: optuna.trial.FrozenTrial, stores: TrialStores) -> dict[str, float] | None:
    path = stores.trial(trial.user_attrs[attrs.TRIAL_DIR]).test_path
    try:
        scores: dict[str, float] = json.loads(path.read_text(encoding="utf-8"))["test_metrics"]
    except (OSError, ValueError, KeyError):
        return None
    return scores


def confirmation_report(study: optuna.Study, config: Config, stores: TrialStores) -> dict[str, Any]:
    """The report's ``confirmation`` and ``baseline`` sections (each only when the study has one)."""
    trials = study.get_trials(deepcopy=False)
    runs = study_runs(study)
    sections: dict[str, Any] = {}
    confirmed = groups(runs) if confirmation_done(study) else []
    best = winner(confirmed)
    if best is not None:
        sections["confirmation"] = _confirmation(trials, confirmed, best, config, stores)
    baseline = next((r for r in runs if r.stage == BASELINE), None)
    answer = best_trial(study)
    if baseline is not None and baseline.value is not None and answer is not None:
        section = _baseline(trials[baseline.number], sections.get("confirmation"), stores)
        direction = study_direction(study)
        section["validation_gain"] = oriented(float(answer.value or 0.0), direction) - baseline.value
        searched = top_configurations([r for r in runs if r.stage == SEARCH], 1)
        if searched:  # the search's own best, which the baseline may beat
            section["best_search_trial_id"] = trials[searched[0].number].user_attrs.get(attrs.TRIAL_ID)
            section["search_gain"] = (searched[0].value or 0.0) - baseline.value
        sections["baseline"] = section
    return sections


def _confirmation(
    trials: list[optuna.trial.FrozenTrial], confirmed: list[Group], best: Group, config: Config, stores: TrialStores
) -> dict[str, Any]:
    confidence = config.evaluation.confidence
    configurations = []
    for group in confirmed:
        origin = trials[int(trials[group.runs[0].number].user_attrs[attrs.CONFIRM_OF])]
        seeds = [
            {
                "seed": run.seed,
                "trial": run.position,
                "trial_id": trials[run.number].user_attrs.get(attrs.TRIAL_ID),
                "value": trials[run.number].value,
            }
            for run in group.runs
        ]
        values = [s["value"] for s in seeds if s["value"] is not None]
        configurations.append(
            {
                "rank": group.index + 1,
                "params": trial_params(origin),
                "search_trial_id": origin.user_attrs.get(attrs.TRIAL_ID),
                "search_value": origin.value,
                "seeds": seeds,
                "validation": spread(values, confidence) if values else None,
            }
        )
    per_seed: list[dict[str, Any]] = []
    scores: list[dict[str, float]] = []
    for run in best.runs:
        metrics = _test_metrics(trials[run.number], stores) if run.value is not None else None
        if metrics is not None:
            scores.append(metrics)
            per_seed.append({"seed": run.seed, "trial_id": trials[run.number].user_attrs.get(attrs.TRIAL_ID)} | metrics)
    names = sorted({k for s in scores for k in s})
    test = {n: spread([float(s[n]) for s in scores if n in s], confidence) for n in names}
    return {
        "seeds": sorted({r.seed for g in confirmed for r in g.runs if r.seed is not None}),
        "winner": best.index + 1,
        "configurations": configurations,
        "winner_test": {"per_seed": per_seed, "summary": test},
        "interval_method": f"Student-t interval of the mean over seeds, {confidence:.0%}",
    }


def _baseline(
    trial: optuna.trial.FrozenTrial, confirmation: dict[str, Any] | None, stores: TrialStores
) -> dict[str, Any]:
    section: dict[str, Any] = {
        "trial_id": trial.user_attrs.get(attrs.TRIAL_ID),
        "params": trial_params(trial),
        "validation_value": trial.value,
    }
    metrics = _test_metrics(trial, stores) if confirmation else None
    if confirmation and metrics:
        section["test_metrics"] = {k: metrics[k] for k in HEADLINE if k in metrics}
        summary = confirmation["winner_test"]["summary"]
        section["test_gain"] = {
            name: {
                "gain": summary[name]["mean"] - metrics[name],
                "interval": [bound - metrics[name] for bound in summary[name]["interval"]],
            }
            for name in HEADLINE
            if name in summary and name in metrics
        }
    return section
