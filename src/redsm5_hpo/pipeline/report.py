"""``redsm5-hpo evaluate`` and ``report``: redo a study's test evaluation, or its summary and plots,
from what is on disk (Optuna storage, trial reports, retained checkpoints)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.evaluation.reports import validate_report, write_report
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.study import expected_trials, record_answer
from redsm5_hpo.layout import StudyDir
from redsm5_hpo.pipeline.evaluate import (
    evaluate_best_trial,
    study_summary,
    study_warnings,
    trial_counts,
    with_test_history,
)
from redsm5_hpo.pipeline.mirroring import publish
from redsm5_hpo.pipeline.parts import trial_stores
from redsm5_hpo.pipeline.record import open_saved_study
from redsm5_hpo.pipeline.study import previous_report, write_plots


def reevaluate_study(study_dir: Path, device: str | None = None) -> tuple[dict[str, Any], list[Path]]:
    """Score the best trial's retained best/co-best checkpoints on test again (on ``device`` instead of the
    configured one when given) and rewrite the report."""
    record, config, study = open_saved_study(study_dir)
    corpus = load_corpus(config.data, config.seed)
    stores = trial_stores(config, Path(study_dir).parent)
    report = evaluate_best_trial(study, record.study_id, config, corpus, stores, device)
    report = with_test_history(report, previous_report(StudyDir(study_dir)))
    path = write_report(StudyDir(study_dir).report_path, report, "study_report")
    record_answer(study, str(path), report["best_trial_id"], f"{corpus.source}@{corpus.revision}")
    plots = write_plots(study, study_dir, config)
    publish(stores.bucket, stores.root, Path(study_dir))  # the study's bucket holds the report it reads
    return report, plots


def refresh_report(study_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    """Recompute the trial counts, summary and plots of an existing report (no test evaluation)."""
    path = StudyDir(study_dir).report_path
    if not path.is_file():
        raise StudyError(f"{path} does not exist yet; run `{StudyDir(study_dir).command('evaluate')}` first")
    _, config, study = open_saved_study(study_dir)
    report = json.loads(path.read_text(encoding="utf-8"))
    try:
        validate_report(report, "study_report")
    except jsonschema.ValidationError as e:
        raise StudyError(
            f"{path} was written by an earlier version and lacks what reports hold now ({e.message}); rewrite it "
            f"with `{StudyDir(study_dir).command('evaluate')}`"
        ) from None
    report["summary"] = study_summary(study)
    report["trials"] = trial_counts(report["summary"], expected_trials(study, config.hpo))
    report["best_params"] = next(
        (h["params"] for h in report["summary"]["best_value_history"] if h["trial_id"] == report["best_trial_id"]),
        report.get("best_params", {}),
    )
    report["warnings"] = study_warnings(study, config, report["test_metrics"], report["baselines"])
    write_report(path, report, "study_report")
    plots = write_plots(study, study_dir, config)
    stores = trial_stores(config, Path(study_dir).parent)
    publish(stores.bucket, stores.root, Path(study_dir))
    return report, plots
