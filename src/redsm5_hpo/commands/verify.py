"""``redsm5-hpo verify`` and ``sync``: replay the tracking journal, then audit a study's metric series."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from redsm5_hpo.config.schema import Config
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.trials import counted_trials
from redsm5_hpo.layout import StudyDir, TrialDir
from redsm5_hpo.pipeline.scoring import study_run_metrics
from redsm5_hpo.pipeline.services import open_tracker
from redsm5_hpo.pipeline.study_record import StudyRecord, open_saved_study
from redsm5_hpo.pipeline.trial import CHECKPOINT_METRICS, TRUNCATION_METRICS
from redsm5_hpo.tracking.audit import AuditResult, ExpectedRun, audit
from redsm5_hpo.tracking.buffered import JournalingTracker
from redsm5_hpo.training.loop import epoch_metric_names

STUDY_RUN_METRICS = ("best_so_far", "completed_trials")


def sync_journal(config: Config, timeout_s: float) -> tuple[int, int]:
    """Send every journaled record (this experiments directory's, including those of dead processes).
    Returns (records sent, records still waiting)."""
    with open_tracker(config) as tracker:
        tracker.flush(timeout_s)
        sent = tracker.replayed
        left = tracker.close(0)
    return sent, left


def verify_study(config: Config, study_dir: Path, timeout_s: float) -> AuditResult:
    """Replay the journal (up to ``timeout_s``), then compare the study's expected metric series with the
    tracker's: every (run, metric, step) exactly once."""
    record, _, study = open_saved_study(study_dir)
    with open_tracker(config) as tracker:
        tracker.flush(timeout_s)
        expected, partial = expected_runs(study, record, study_dir)
        run_ids = {r.run_id for r in expected} | {run_id for run_id, _ in partial}
        held = {run_id: _points(tracker, run_id) for run_id in run_ids}
    return audit(expected, held, partial)


def expected_runs(
    study: optuna.Study, record: StudyRecord, study_dir: Path
) -> tuple[list[ExpectedRun], list[tuple[str, str]]]:
    """Runs with a known full series, and (run id, label) of runs only checked for duplicates."""
    index = {t.number: k for k, t in counted_trials(study)}  # the study run's step for each counted trial
    complete = optuna.trial.TrialState.COMPLETE
    pruned = optuna.trial.TrialState.PRUNED
    expected: list[ExpectedRun] = []
    partial: list[tuple[str, str]] = []
    study_points: set[tuple[str, int]] = set()
    root = Path(study_dir).parent
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get(attrs.RUN_ID)
        label = f"trial {trial.number} ({trial.user_attrs.get('trial_id', '?')})"
        if trial.state not in (complete, pruned) or trial.number not in index:
            if run_id:
                partial.append((str(run_id), label))
            continue
        study_points |= {(m, index[trial.number]) for m in STUDY_RUN_METRICS}
        if not run_id:
            continue
        trial_config = TrialDir.located(root, str(trial.user_attrs[attrs.TRIAL_DIR])).read_config()
        first = int(trial.user_attrs.get(attrs.ROLLBACK_EPOCH, 0)) + 1
        # a pruned trial logged every epoch up to the one the pruner stopped it after
        epochs = trial_config.train.epochs if trial.state == complete else int(trial.last_step or 0)
        points = {(m, e) for m in epoch_metric_names() for e in range(first, epochs + 1)}
        points |= {(m, 0) for m in TRUNCATION_METRICS}
        if trial_config.train.save_checkpoints and trial.state == complete:
            points |= {(m, epochs) for m in CHECKPOINT_METRICS}
        expected.append(ExpectedRun(str(run_id), label, frozenset(points)))
    report = StudyDir(study_dir).report_path
    if report.is_file():
        study_points |= {(m, 0) for m in study_run_metrics(json.loads(report.read_text(encoding="utf-8")))}
    expected.append(ExpectedRun(record.mlflow_run_id, "study", frozenset(study_points)))
    return expected, partial


def _points(tracker: JournalingTracker, run_id: str) -> list[tuple[str, int, int]]:
    if tracker.resolve(run_id).startswith("local-"):
        return []  # never reached the tracker: every expected point of it is missing
    return tracker.metric_points(run_id)
