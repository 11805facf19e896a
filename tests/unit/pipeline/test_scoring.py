"""When a study's report is current: a resume of the study then has nothing to do."""

import optuna

from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.config.schema import HpoConfig
from redsm5_hpo.hpo import attrs
from redsm5_hpo.hpo.slots import enqueue_slots
from redsm5_hpo.hpo.study import create_study
from redsm5_hpo.pipeline.scoring import report_is_current, study_summary, trial_counts


def finished_study(tiny_config, tmp_path, values):
    study = create_study(tiny_config, "s", f"sqlite:///{tmp_path / 'optuna.db'}")
    enqueue_slots(study, apply_overrides(tiny_config, {"hpo.n_trials": len(values)}))
    for i, value in enumerate(values):
        trial = study.ask()
        trial.set_user_attr("trial_id", f"t{i}")
        study.tell(trial, value)
    return study


def searched(n_trials: int) -> HpoConfig:
    return HpoConfig(n_trials=n_trials, baseline_trial=False)


def report_of(study, n_trials, best_trial_id):
    return {"best_trial_id": best_trial_id, "trials": trial_counts(study_summary(study), n_trials)}


def test_a_report_of_the_finished_study_as_it_is_is_current(tiny_config, tmp_path) -> None:
    study = finished_study(tiny_config, tmp_path, [0.2, 0.7, 0.4])
    assert report_is_current(report_of(study, 3, "t1"), study, searched(3))
    assert not report_is_current(report_of(study, 3, "t0"), study, searched(3))  # names another best trial
    assert not report_is_current({**report_of(study, 3, "t1"), "trials": {"completed": 2}}, study, searched(3))
    assert not report_is_current(report_of(study, 4, "t1"), study, searched(4))  # a trial is still to run


def test_a_study_with_work_left_has_no_current_report(tiny_config, tmp_path) -> None:
    study = finished_study(tiny_config, tmp_path, [0.2, 0.7])
    report = report_of(study, 2, "t1")
    study.enqueue_trial({}, user_attrs={attrs.SLOT: 0, "resume_of": 0})  # e.g. a rollback re-queued a trial
    assert not report_is_current(report, study, searched(2))

    (tmp_path / "disk").mkdir()
    stopped = create_study(tiny_config, "s", f"sqlite:///{tmp_path / 'disk' / 'optuna.db'}")
    enqueue_slots(stopped, apply_overrides(tiny_config, {"hpo.n_trials": 2}))
    done = stopped.ask()
    done.set_user_attr("trial_id", "t0")
    stopped.tell(done, 0.5)
    full = stopped.ask()  # the second slot, stopped by a full disk: it resumes once space is free
    full.set_user_attr(attrs.RESUMABLE, True)
    stopped.tell(full, state=optuna.trial.TrialState.FAIL)
    assert not report_is_current(report_of(stopped, 2, "t0"), stopped, searched(2))
    full_frozen = stopped.trials[1]
    assert full_frozen.user_attrs[attrs.SLOT] == 1  # it is the second slot, not a trial of its own
