"""Score checkpoints from disk: the study's one test evaluation, with fallback past corrupted ones."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from redsm5_hpo import __version__
from redsm5_hpo.checkpoints.loading import best_first, load_first_valid
from redsm5_hpo.checkpoints.store import CheckpointStore, StoredCheckpoint, TrialStores
from redsm5_hpo.config.schema import Config, HpoConfig, training_seed
from redsm5_hpo.data.loading import Corpus
from redsm5_hpo.devices import Runtime, resolve_runtime
from redsm5_hpo.evaluation.metrics import constant_baselines, paper_metrics
from redsm5_hpo.evaluation.predict import bootstrap_intervals, predict, score, score_calibrated
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.evaluation.verdicts import result_warnings
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.slots import expected_trials
from redsm5_hpo.hpo.stopping import describe
from redsm5_hpo.hpo.trials import (
    LIVE,
    best_trial,
    counted_trials,
    stage_of,
    stopped_resumable,
    study_direction,
    study_history,
    trial_params,
)
from redsm5_hpo.layout import TrialDir
from redsm5_hpo.pipeline.builders import build_model, split_datasets
from redsm5_hpo.pipeline.confirmation import confirmation_report


def evaluate_best_trial(
    study: optuna.Study,
    study_id: str,
    config: Config,
    corpus: Corpus,
    stores: TrialStores,
    device: str | None = None,
) -> dict[str, Any]:
    """Score the best trial's best and co-best checkpoints on the test split (the only test access), on
    the best trial's configured device or ``device``."""
    summary = study_summary(study)
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        reasons = Counter(t.user_attrs.get(attrs.FAIL_REASON, "unknown") for t in study.trials)
        failures = "; ".join(f"{n} trial(s): {reason}" for reason, n in reasons.items())  # each cause said once
        raise StudyError(
            f"no trial of study {study_id} completed, so there is nothing to evaluate on test; {failures}. "
            "Fix the cause above (see the trial logs under experiments/trial_*/logs/) and run the study again."
        )
    best = best_trial(study)
    assert best is not None  # a completed trial exists (checked above)
    trial = stores.trial(best.user_attrs[attrs.TRIAL_DIR])
    trial_config = trial.read_config()
    trial_report = trial.read_report()
    thresholds = trial_report.get("thresholds")
    runtime = resolve_runtime(trial_config.train, device)
    evaluations = evaluate_checkpoints(
        trial_config, stores.store(trial), trial_report["checkpoint_references"], corpus, "test", thresholds, runtime
    )
    y = {s: [p.labels for p in corpus.splits[s]] for s in ("train", "test")}
    baselines = constant_baselines(np.array(y["train"]), np.array(y["test"]))
    return {
        "study_id": study_id,
        "best_trial_id": best.user_attrs[attrs.TRIAL_ID],
        "optimization_metric": config.train.optimization_metric,
        "best_validation_value": float(best.value or 0.0),
        "best_params": trial_params(best),
        "test_metrics": evaluations[0]["test_metrics"],
        **interval_fields(evaluations[0], trial_config),
        "paper_metrics": {
            **evaluations[0]["paper_metrics"],
            "split_protocol": "predefined" if corpus.predefined_splits else trial_config.data.split_protocol,
        },
        "checkpoint_evaluations": evaluations,
        "baselines": baselines,
        "warnings": study_warnings(study, config, evaluations[0]["test_metrics"], baselines),
        "config": dataclasses.asdict(trial_config),
        "seeds": {"seed": trial_config.seed, "training_seed": training_seed(trial_config), "sampler_seed": config.seed},
        "dataset": {
            "source": corpus.source,
            "revision": corpus.revision,
            "splits": {k: len(v) for k, v in corpus.splits.items()},
            "quality": corpus.stats.quality(),
        },
        "checkpoint_references": [e["checkpoint"] for e in evaluations],
        "runtime": {"training": trial_report.get("runtime"), "evaluation": runtime.describe()},
        "thresholds": thresholds,
        "trials": trial_counts(summary, expected_trials(study, config.hpo)),
        **stopped_field(study, config),
        **confirmation_report(study, config, stores),
        "summary": summary,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "code_version": __version__,
    }


PAPER_SCALARS = ("micro_f1", "macro_f1", "weighted_f1", "exact_match_accuracy")


def interval_fields(evaluation: dict[str, Any], config: Config) -> dict[str, Any]:
    """The report's ``test_intervals`` (metric -> [low, high]) and how they were made; none when off."""
    if "intervals" not in evaluation:
        return {}
    settings = config.evaluation
    return {
        "test_intervals": evaluation["intervals"],
        "interval_method": {
            "method": "percentile bootstrap, test posts resampled as units",
            "samples": settings.bootstrap_samples,
            "confidence": settings.confidence,
            "seed": config.seed,
        },
    }


def stopped_field(study: optuna.Study, config: Config) -> dict[str, Any]:
    """The report's ``stopped`` (why the study claimed no more trials), when a stopping rule held."""
    reason = study.user_attrs.get(attrs.STOPPED)
    return {"stopped": {"reason": reason, "why": describe(reason, config.hpo)}} if reason else {}


def with_test_history(report: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``report`` with ``test_evaluations``: every test evaluation of the study (when, which best trial,
    after how many completed trials), this one last, so a re-evaluated test split (a study given more
    trials, ``evaluate``) is never mistaken for an untouched one. ``previous`` is the report it replaces."""
    history = list((previous or {}).get("test_evaluations", []))
    if previous and not history:  # a report written before the history was kept: its evaluation counts
        history = [{"at": previous.get("created_at"), "best_trial_id": previous.get("best_trial_id")}]
    entry = {"at": report["created_at"], "best_trial_id": report["best_trial_id"]}
    history.append(entry | {"completed_trials": report["trials"]["completed"]})
    return {**report, "test_evaluations": history}


def study_run_metrics(report: dict[str, Any]) -> dict[str, float]:
    """What the study's MLflow run records at step 0: the test metrics, the paper-protocol scalars
    (``test_paper_*``) and each one's interval (``<metric>_ci_low`` / ``_ci_high``)."""
    paper = report.get("paper_metrics") or {}
    metrics = {**report["test_metrics"], **{f"test_paper_{k}": float(paper[k]) for k in PAPER_SCALARS if k in paper}}
    for name, (low, high) in (report.get("test_intervals") or {}).items():
        metrics |= {f"{name}_ci_low": float(low), f"{name}_ci_high": float(high)}
    return metrics


def study_warnings(
    study: optuna.Study, config: Config, test_metrics: dict[str, float], baselines: dict[str, float]
) -> list[str]:
    """The report's warnings (``evaluation.verdicts``): no signal in the search, a test score below a
    constant baseline."""
    complete = [
        float(t.value)
        for _, t in counted_trials(study)
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
    ]
    metric = config.train.optimization_metric
    return result_warnings(complete, study_direction(study), metric, test_metrics, baselines)


def trial_counts(summary: dict[str, Any], requested: int) -> dict[str, int]:
    """Requested, and completed / pruned / failed among the trials that count (from ``study_summary``)."""
    states = [h["state"] for h in summary["best_value_history"]]
    return {
        "requested": requested,
        "completed": states.count("complete"),
        "pruned": states.count("pruned"),
        "failed": states.count("fail"),
    }


def report_is_current(report: dict[str, Any], study: optuna.Study, hpo: HpoConfig) -> bool:
    """True when ``study`` has nothing left to run (its trials finished, baseline and confirmation included;
    none waiting, running or stopped by a full disk) and ``report`` describes it as it is now: the same
    best trial, the same counts."""
    n_trials = expected_trials(study, hpo)
    if study.get_trials(deepcopy=False, states=LIVE) or len(counted_trials(study)) < n_trials:
        return False
    if stopped_resumable(study):
        return False
    best = best_trial(study)
    if best is None or report.get("best_trial_id") != best.user_attrs.get(attrs.TRIAL_ID):
        return False
    return bool(report.get("trials") == trial_counts(study_summary(study), n_trials))


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """Trials by outcome (with the reason of each pruned or failed one) and, for each finished trial by its
    1-based index (the ``k`` of the log's ``trial k/N``), its outcome, its searched parameters and the best
    value after it."""
    counted = counted_trials(study)
    return {
        "best_value_history": [
            {
                "trial": p.trial,
                "state": p.state,
                "value": p.value,
                "best_so_far": p.best_so_far,
                "trial_id": t.user_attrs.get(attrs.TRIAL_ID),
                "params": trial_params(t),
                "stage": stage_of(t),
            }
            for p, (_, t) in zip(study_history(study), counted, strict=True)
        ],
        "pruned": [
            {"trial": k, "epoch": t.last_step, "reason": t.user_attrs.get(attrs.PRUNE_REASON, "pruned")}
            for k, t in counted
            if t.state == optuna.trial.TrialState.PRUNED
        ],
        "failed": [
            {"trial": k, "reason": t.user_attrs.get(attrs.FAIL_REASON, "unknown")}
            for k, t in counted
            if t.state == optuna.trial.TrialState.FAIL
        ],
    }


def evaluate_checkpoints(
    config: Config,
    store: CheckpointStore,
    references: list[str],
    corpus: Corpus,
    split: str,
    thresholds: dict[str, Any] | None = None,
    runtime: Runtime | None = None,
) -> list[dict[str, Any]]:
    """Score each referenced checkpoint (at the trial's calibrated ``thresholds`` when given, and at 0.5) on
    ``runtime`` (default: ``config``'s device and precision); one that fails verification is replaced by
    the next valid checkpoint of the trial (best first), with a WARNING naming both."""
    runtime = runtime or resolve_runtime(config.train)
    available = best_first(store.list())
    names = {Path(r).name for r in references}  # a reference is the checkpoint's path when it was written
    referenced = [c for c in available if c.path.name in names]
    evaluations: list[dict[str, Any]] = []
    used: set[Path] = set()
    for checkpoint in referenced or available[:1]:
        candidates = [checkpoint, *(c for c in available if c.path != checkpoint.path)]
        model, tokenizer = build_model(config, corpus, runtime)
        loaded = load_first_valid(candidates, model, model.architecture_signature())
        if loaded.path in used:
            continue
        used.add(loaded.path)
        (dataset,) = split_datasets(config, corpus, tokenizer, split)
        predictions = predict(model, dataset, config.train, runtime)
        prefix = "test" if split == "test" else "val"
        level = config.evaluation.evidence_metric
        at_half = score(predictions, dataset, prefix, evidence_level=level)
        metrics = score_calibrated(predictions, dataset, prefix, thresholds, level) if thresholds else at_half
        evaluation = {
            "checkpoint": str(loaded.path),
            "epoch": loaded.epoch,
            "test_metrics": metrics,
            "metrics_at_0_5": at_half,
            "paper_metrics": paper_metrics(predictions.labels, predictions.probs),
        }
        bootstrap = config.evaluation
        if split == "test" and bootstrap.bootstrap_samples and not evaluations:  # the report's numbers
            evaluation["intervals"] = {
                name: list(interval)
                for name, interval in bootstrap_intervals(
                    predictions,
                    dataset,
                    prefix,
                    thresholds,
                    level,
                    bootstrap.bootstrap_samples,
                    bootstrap.confidence,
                    config.seed,
                ).items()
            }
        evaluations.append(evaluation)
    if not evaluations:
        raise StudyError(f"no checkpoint left in {store.directory} to evaluate")
    return evaluations


def score_trial_on_test(files: TrialDir, stores: TrialStores, corpus: Corpus, device: str | None) -> dict[str, Any]:
    """The trial's best checkpoint on test at its calibrated thresholds, written to ``test_evaluation.json``
    in its directory (no interval: the spread over seeds is the one reported)."""
    config = files.read_config()
    config = dataclasses.replace(config, evaluation=dataclasses.replace(config.evaluation, bootstrap_samples=0))
    report = files.read_report()
    runtime = resolve_runtime(config.train, device)
    store = stores.store(files)
    (evaluation,) = evaluate_checkpoints(
        config, store, report["checkpoint_references"][:1], corpus, "test", report.get("thresholds"), runtime
    )
    scores = {"checkpoint": evaluation["checkpoint"], "test_metrics": evaluation["test_metrics"]}
    write_report(files.test_path, scores, "trial_test_evaluation")
    return scores


def evaluate_checkpoint(
    config: Config,
    checkpoint: StoredCheckpoint,
    corpus: Corpus,
    split: str,
    thresholds: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Load one verified checkpoint into a model built from ``config`` and score ``split``."""
    store = CheckpointStore(checkpoint.path.parent, checkpoint.mirror)
    (evaluation,) = evaluate_checkpoints(config, store, [str(checkpoint.path)], corpus, split, thresholds)
    return dict(evaluation["test_metrics"])
