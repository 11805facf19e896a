import copy
import json

import optuna
import pytest
import torch

from redsm5_hpo.checkpoints.retention import CheckpointRecord, RetentionPolicy, plan_retention
from redsm5_hpo.checkpoints.store import CheckpointStore, TrialStores
from redsm5_hpo.config.schema import RetentionConfig
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.retention import StudyCheckpoints, TrialSummary, select_release
from redsm5_hpo.hpo.trials import best_trial, logical_position


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
    other_worker = make_trial(study, tmp_path, None, [0.1, 0.2])  # another worker's trial, running too
    coordinator = StudyCheckpoints(study, RetentionConfig(), TrialStores(tmp_path))
    assert coordinator.running_trials() == 2  # the preflight asks room for both
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
    assert len(CheckpointStore(other_worker / "checkpoints").list()) == 2  # escalation never touches it
    assert coordinator.reclaimable_bytes() == 0


def test_release_can_be_disabled_and_escalation_changes_later_policy(tmp_path) -> None:
    study = optuna.create_study(direction="maximize")
    worse = make_trial(study, tmp_path, 0.4, [0.4])
    make_trial(study, tmp_path, 0.8, [0.8])
    coordinator = StudyCheckpoints(
        study, RetentionConfig(keep_last_n=3, keep_best_k=2, release_finished_trials=False), TrialStores(tmp_path)
    )
    assert coordinator.release_finished() == 0 and (worse / "checkpoints").is_dir()
    assert (coordinator.policy().keep_last_n, coordinator.policy().keep_best_k) == (3, 2)
    coordinator.escalate()
    assert (coordinator.policy().keep_last_n, coordinator.policy().keep_best_k) == (0, 1)


def test_a_minimizing_study_keeps_its_lowest_trial_and_only_its_lowest_checkpoint(tmp_path) -> None:
    study = optuna.create_study(direction="minimize")
    worse = make_trial(study, tmp_path, 0.8, [0.9, 0.8], "minimize")
    better = make_trial(study, tmp_path, 0.3, [0.6, 0.3, 0.4], "minimize")
    coordinator = StudyCheckpoints(study, RetentionConfig(), TrialStores(tmp_path))
    assert coordinator.must_beat(None) == (-0.3, False)  # turned so higher is better, as checkpoint scores are
    coordinator.release_finished()
    assert not (worse / "checkpoints").exists()
    coordinator.keep_only_study_best()
    (survivor,) = CheckpointStore(better / "checkpoints").list()
    assert survivor.manifest["objective"] == 0.3


def test_ties_go_to_the_earliest_logical_position_not_the_lowest_number() -> None:
    # slot 0 was interrupted and continues as trial 3; it ties with slot 1 (trial 1): slot 0 stays the best
    trials = [
        TrialSummary(1, True, 0.0, position=1),
        TrialSummary(2, True, 0.0, position=2),
        TrialSummary(3, True, 0.0, position=0),
    ]
    assert select_release(trials) == ({1, 2}, {3})


def test_best_trial_and_release_follow_a_continuation_to_its_slot(tmp_path) -> None:
    study = optuna.create_study(direction="maximize")
    for slot in range(3):
        study.enqueue_trial({}, user_attrs={attrs.SLOT: slot})
    first = study.ask()  # slot 0, interrupted: failed and continued below as trial 3
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    study.set_user_attr(attrs.REQUEUED_TRIALS, [first.number])
    study.enqueue_trial({}, user_attrs={attrs.RESUME_OF: first.number, attrs.SLOT: 0})
    coordinator = StudyCheckpoints(study, RetentionConfig(), TrialStores(tmp_path))
    for _ in range(3):
        trial = study.ask()
        study.tell(trial, 0.0)  # every trial ties; slots 1 and 2 finish before slot 0's continuation
        if trial.number == 2:  # while slot 0 still runs, its checkpoints that tie the best may become the best
            assert coordinator.must_beat(0) == (0.0, True) and coordinator.must_beat(2) == (0.0, False)
    trials = study.get_trials()
    assert [logical_position(t, trials) for t in trials] == [0, 1, 2, 0]
    assert study.best_trial.number == 1  # Optuna's rule: the lowest number among ties
    assert best_trial(study).number == 3  # ours: the trial an uninterrupted run would have made the best
    rolled_back = copy.deepcopy(trials[3])  # a rollback's continuation carries no slot: its origin's counts
    rolled_back.user_attrs = {attrs.RESUME_OF: 0}
    assert logical_position(rolled_back, trials) == 0
    assert coordinator.must_beat(1) == (0.0, False)
    assert select_release(coordinator._summaries())[1] == {3}


def test_a_running_trial_keeps_a_checkpoint_that_ties_the_study_best_only_if_it_comes_first() -> None:
    records = [CheckpointRecord(1, 0.5, 10, 4), CheckpointRecord(2, 0.5, 10, 4)]
    policy = RetentionPolicy(keep_last_n=0, keep_best_k=1)
    assert plan_retention(records, policy, trial_finished=True, must_beat=0.5).keep == set()
    assert plan_retention(records, policy, trial_finished=True, must_beat=0.5, tie_wins=True).keep == {1, 2}
