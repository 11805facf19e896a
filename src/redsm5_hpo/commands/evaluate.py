"""``redsm5-hpo evaluate``: redo a study's test evaluation from what is on disk (Optuna storage, trial reports,
retained checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.evaluation.reports import write_report
from redsm5_hpo.hpo.study import record_answer
from redsm5_hpo.layout import StudyDir
from redsm5_hpo.pipeline.mirroring import publish
from redsm5_hpo.pipeline.scoring import (
    evaluate_best_trial,
    with_test_history,
)
from redsm5_hpo.pipeline.services import trial_stores
from redsm5_hpo.pipeline.study import previous_report, write_plots
from redsm5_hpo.pipeline.study_record import open_saved_study


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
