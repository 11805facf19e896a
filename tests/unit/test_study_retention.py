import json

import optuna
import pytest
import torch

from redsm5_hpo.checkpoints.store import CheckpointStore
from redsm5_hpo.config.schema import RetentionConfig
from redsm5_hpo.hpo.retention import StudyCheckpoints, TrialSummary, select_release


@pytest.mark.parametrize(
    ("trials", "release", "best"),
    [
        ([TrialSummary(0, True, 0.5), TrialSummary(1, True, 0.7)], {0}, {1}),
        ([TrialSummary(0, True, 0.7), TrialSummary(1, True, 0.7)], {1}, {0}),  # ties: the first is the best
        ([TrialSummary(0, True, None), TrialSummary(1, False, None)], {0}, set()),  # failed goes, running stays
        ([TrialSummary(0, True, 0.9), TrialSummary(1, False, None)], set(), {0}),
        ([TrialSummary(0, True, 0.9), TrialSummary(1, True, None, resumable=True)], set(), {0}),
        # a diverged trial keeps its resume point (for a rollback) while it is the newest finished trial
        ([TrialSummary(0, True, 0.9), TrialSummary(1, True, None, diverged=True)], set(), {0}),
        ([TrialSummary(0, True, None, diverged=True), TrialSummary(1, True, 0.5)], {0}, {1}),
        ([TrialSummary(0, True, None, diverged=True), TrialSummary(1, False, None)], set(), set()),
    ],
)
def test_select_release(trials, release, best) -> None:
    assert select_release(trials) == (release, best)


def test_disk_pressure_releases_a_diverged_trial_too() -> None:
    trials = [TrialSummary(0, True, 0.9), TrialSummary(1, True, None, diverged=True)]
    assert select_release(trials, keep_diverged=False) == ({1}, {0})


def make_trial(study, tmp_path, value, objectives, direction="maximize"):
    trial = study.ask()
    trial_dir = tmp_path / f"trial_{trial.number}"
    store = CheckpointStore(trial_dir / "checkpoints")
    for epoch, objective in enumerate(objectives, start=1):
        meta = {"epoch": epoch, "objective": objective, "direction": direction}
        store.save(torch.nn.Linear(2, 2), {"epoch": epoch}, meta)
    best = max(objectives) if direction == "maximize" else min(objectives)
    refs = [str(c.path) for c in store.list() if c.manifest["objective"] == best]
    (trial_dir / "evaluation_report.json").write_text(json.dumps(_report(refs)))
    trial.set_user_attr("trial_dir", str(trial_dir))
    if value is not None:
        study.tell(trial, value)
    return trial_dir


def _report(refs):
    return {
        "trial_id": "t",
        "study_id": "s",
        "trial_number": 0,
        "optimization_metric": "m",
        "best_epoch": 1,
        "best_value": 0.5,
        "validation_metrics": {},
        "checkpoint_references": refs,
        "params": {},
        "seed": 1,
        "dataset": {"source": "s", "revision": "r"},
        "mlflow_run_id": "x",
        "history": [],
        "thresholds": {"criteria": {}, "evidence": 0.5},
        "calibrated_validation_metrics": {},
    }


def test_finished_non_best_trials_are_released_and_reports_updated(tmp_path) -> None:
    study = optuna.create_study(direction="maximize")
    worse = make_trial(study, tmp_path, 0.4, [0.4, 0.3])
    better = make_trial(study, tmp_path, 0.8, [0.8, 0.8, 0.2])
    running = make_trial(study, tmp_path, None, [0.9])
    coordinator = StudyCheckpoints(study, RetentionConfig())
    assert coordinator.release_finished() > 0
    assert not (worse / "checkpoints").exists()
    assert json.loads((worse / "evaluation_report.json").read_text())["released"] is True
    assert len(CheckpointStore(better / "checkpoints").list()) == 3  # best trial untouched here (trial end slims it)
    assert len(CheckpointStore(running / "checkpoints").list()) == 1  # running trial never touched
    assert coordinator.reclaimable_bytes() > 0
    freed = coordinator.keep_only_study_best()
    assert freed > 0
    (survivor,) = CheckpointStore(better / "checkpoints").list()
    assert survivor.manifest["objective"] == 0.8 and survivor.epoch == 2  # the newest of the co-best
    assert len(CheckpointStore(running / "checkpoints").list()) == 1
    assert coordinator.reclaimable_bytes() == 0


def test_release_can_be_disabled_and_escalation_changes_later_policy(tmp_path) -> None:
    study = optuna.create_study(direction="maximize")
    worse = make_trial(study, tmp_path, 0.4, [0.4])
    make_trial(study, tmp_path, 0.8, [0.8])
    coordinator = StudyCheckpoints(study, RetentionConfig(keep_last_n=3, keep_best_k=2, release_finished_trials=False))
    assert coordinator.release_finished() == 0 and (worse / "checkpoints").is_dir()
    assert (coordinator.policy().keep_last_n, coordinator.policy().keep_best_k) == (3, 2)
    coordinator.escalate()
    assert (coordinator.policy().keep_last_n, coordinator.policy().keep_best_k) == (0, 1)


def test_a_minimizing_study_keeps_its_lowest_trial_and_only_its_lowest_checkpoint(tmp_path) -> None:
    study = optuna.create_study(direction="minimize")
    worse = make_trial(study, tmp_path, 0.8, [0.9, 0.8], "minimize")
    better = make_trial(study, tmp_path, 0.3, [0.6, 0.3, 0.4], "minimize")
    coordinator = StudyCheckpoints(study, RetentionConfig())
    assert coordinator.best_score() == -0.3  # turned so higher is better, as checkpoint scores are
    coordinator.release_finished()
    assert not (worse / "checkpoints").exists()
    coordinator.keep_only_study_best()
    (survivor,) = CheckpointStore(better / "checkpoints").list()
    assert survivor.manifest["objective"] == 0.3
