"""The trial's pure parts: its report, how it starts, the stage an error ends it in, the lifecycle observer."""

from __future__ import annotations

import signal
from pathlib import Path

import optuna
import pytest

from redsm5_hpo.checkpoints.store import StoredCheckpoint
from redsm5_hpo.config.schema import Config
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.evaluation.reports import validate_report
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.study import TrialSpec
from redsm5_hpo.interrupts import StopRequested
from redsm5_hpo.pipeline.lifecycle import Lifecycle, Stage, TrialStart
from redsm5_hpo.pipeline.trial import Calibration, TrialIdentity, TrialRun, stage_of, trial_report
from redsm5_hpo.training.hooks import TrialPruned
from redsm5_hpo.training.loop import FitResult


def _report(best_epochs: list[int], spec: TrialSpec | None) -> dict:
    history = [{"val_criteria_macro_f1": 0.1 * epoch, "val_loss": 1.0 / epoch} for epoch in (1, 2, 3)]
    best = [StoredCheckpoint(Path(f"/x/checkpoints/epoch_{e:04d}"), {"epoch": e}) for e in best_epochs]
    trial = TrialIdentity("t1", "s1" if spec else None, spec, Config(), {"source": "sample", "revision": "r1"})
    run = TrialRun("run1", resolve_runtime(Config().train, "cpu"))
    calibration = Calibration({"criteria": {"ANHEDONIA": 0.3}, "evidence": 0.5}, {"val_criteria_macro_f1": 0.4})
    return trial_report(trial, run, FitResult(history=history, best_epoch=3, best_value=0.3), best, calibration)


def test_the_trial_report_names_the_best_checkpoints_with_their_own_epochs_scores() -> None:
    spec = TrialSpec(number=2, total=4, config=Config(), params={"train.lr_head": 0.01})
    report = _report([2, 3], spec)
    validate_report(report, "trial_report")
    assert report["validation_metrics"] == {"val_criteria_macro_f1": 0.30000000000000004, "val_loss": 1 / 3}
    assert report["checkpoint_references"] == ["/x/checkpoints/epoch_0002", "/x/checkpoints/epoch_0003"]
    assert [c["validation_metrics"]["val_loss"] for c in report["checkpoint_validation"]] == [0.5, 1 / 3]
    assert (report["trial_number"], report["params"], report["study_id"]) == (2, {"train.lr_head": 0.01}, "s1")
    assert report["optimization_metric"] == "val_criteria_macro_f1" and report["seed"] == 13


def test_a_trial_outside_a_study_reports_no_number_and_no_params() -> None:
    report = _report([], None)
    validate_report(report, "trial_report")
    assert (report["trial_number"], report["params"], report["checkpoint_references"]) == (None, {}, [])


def test_how_a_trial_starts_and_how_it_ends() -> None:
    assert [(s.from_checkpoint, s.same_run) for s in TrialStart] == [(False, False), (True, True), (True, False)]
    assert stage_of(StopRequested(signal.SIGTERM)) is Stage.INTERRUPTED
    assert stage_of(TrialPruned(2, 0.1)) is Stage.PRUNED
    assert stage_of(KeyboardInterrupt()) is Stage.FAILED and stage_of(ValueError()) is Stage.FAILED


class _Tags:
    def __init__(self) -> None:
        self.tags: list[tuple[str, dict[str, str]]] = []

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.tags.append((run_id, tags))


@pytest.mark.parametrize("with_run", [False, True])
def test_the_lifecycle_observer_writes_each_stage_to_optuna_and_to_the_run_once_it_exists(with_run: bool) -> None:
    study = optuna.create_study()
    trial = study.ask()
    tracker = _Tags()
    lifecycle = Lifecycle(trial)
    lifecycle.enter(Stage.QUEUED)
    if with_run:
        lifecycle.attach(tracker, "run1")  # type: ignore[arg-type]
        lifecycle.enter(Stage.FAILED, fail_reason="ValueError: x")
    assert study.trials[0].user_attrs[attrs.LIFECYCLE] == ("failed" if with_run else "queued")
    assert tracker.tags == ([("run1", {"lifecycle": "failed", "fail_reason": "ValueError: x"})] if with_run else [])
    # the run's id is on the Optuna trial as soon as the run exists: a resume continues in that run
    assert study.trials[0].user_attrs.get(attrs.RUN_ID) == ("run1" if with_run else None)
