"""A study whose trials all tie on the objective (the tiny encoder scores validation macro-F1 0.0 after two
epochs), killed at several points and resumed: an interrupted trial comes back under a new Optuna number,
yet the study's best is still the trial an uninterrupted run names (the earliest logical position), its
checkpoints are the ones kept, and the report is the uninterrupted one."""

import hashlib
import json
from pathlib import Path

import pytest

from tests.helpers.study_cli import cli, kill_and_resume

OVERRIDES = ["model=tiny", "train.epochs=2", "train.batch_size=16", "hpo.n_trials=3", "hpo.baseline_trial=false"]
# 19 + 20 batches per trial (see test_resume), 4 validation batches per epoch
KILL_POINTS = {
    "mid_epoch:25": "first trial, epoch 2",
    "checkpoint_commit:2": "first trial, its last checkpoint about to commit",
    "mid_validation:10": "second trial, validation of epoch 1",
    "mid_epoch:100": "third trial, epoch 1",
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("ties") / "experiments"
    result = cli(root, "tune", *OVERRIDES)
    assert result.returncode == 0, result.stderr[-2000:]
    report, weights = outcome(root)
    values = {h["value"] for h in report["summary"]["best_value_history"]}
    assert values == {0.0}, "the test needs every trial to tie"
    return report, weights


@pytest.mark.parametrize("fault", list(KILL_POINTS), ids=list(KILL_POINTS.values()))
def test_tied_trials_killed_and_resumed_name_the_same_best_trial(uninterrupted, tmp_path, fault) -> None:
    root = tmp_path / "experiments"
    kill_and_resume(root, OVERRIDES, fault)
    report, weights = outcome(root)
    expected, expected_weights = uninterrupted
    assert _slot_of(root, report["best_trial_id"]) == 0 == _slot_of(root, expected["best_trial_id"], expected)
    assert report["test_metrics"] == expected["test_metrics"]
    assert report["trials"] == {"requested": 3, "completed": 3, "pruned": 0, "failed": 0}
    assert weights == expected_weights


def outcome(root: Path) -> tuple[dict, list[str]]:
    """The report and the SHA-256 of the weights of every checkpoint it evaluated (co-best ones tie too)."""
    (path,) = root.glob("study_*/study_report.json")
    report = json.loads(path.read_text())
    refs = report["checkpoint_references"]
    return report, [hashlib.sha256((Path(p) / "model.safetensors").read_bytes()).hexdigest() for p in refs]


def _slot_of(root, trial_id: str, report: dict | None = None) -> int:
    """The queue slot of a trial (its trial report's ``trial_number``)."""
    if report is not None:  # the uninterrupted study lives elsewhere: find its trial from its report
        root = Path(report["checkpoint_references"][0]).parents[2]
    return json.loads((root / f"trial_{trial_id}" / "evaluation_report.json").read_text())["trial_number"]
