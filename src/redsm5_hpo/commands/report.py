"""``redsm5-hpo evaluate`` and ``report``: redo a study's test evaluation, or its summary and plots,
from what is on disk (Optuna storage, trial reports, retained checkpoints)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from redsm5_hpo.evaluation.reports import validate_report, write_report
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.slots import expected_trials
from redsm5_hpo.layout import StudyDir
from redsm5_hpo.pipeline.mirroring import publish
from redsm5_hpo.pipeline.scoring import (
    study_summary,
    study_warnings,
    trial_counts,
)
from redsm5_hpo.pipeline.services import trial_stores
from redsm5_hpo.pipeline.study import write_plots
from redsm5_hpo.pipeline.study_record import open_saved_study


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
