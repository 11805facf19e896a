"""Study progress: ETA and best so far."""

from __future__ import annotations

import math

from redsm5_hpo.hpo.progress import format_duration, study_progress


def test_eta_is_mean_trial_time_times_trials_left() -> None:
    p = study_progress(trial=3, total=10, durations_s=[60, 120], values=[0.5, float("nan")])
    assert p.eta_s == 90 * 8
    assert p.completion_rate == 0.2
    assert p.best_so_far == 0.5
    assert p.as_tags()["progress.trial"] == "3/10"
    assert "ETA 12m00s" in p.describe()


def test_progress_before_any_trial_has_no_eta() -> None:
    p = study_progress(trial=1, total=4, durations_s=[], values=[])
    assert p.eta_s is None and p.best_so_far is None
    assert p.as_tags()["progress.eta_s"] == "unknown"
    assert format_duration(3 * 3600 + 65) == "3h01m"
    assert math.isclose(study_progress(5, 4, [10] * 4, [1.0] * 4).eta_s or 0, 0)


def test_best_so_far_follows_the_objectives_direction() -> None:
    assert study_progress(3, 4, [1.0, 1.0], [0.5, 0.2], "minimize").best_so_far == 0.2
    assert study_progress(3, 4, [1.0, 1.0], [0.5, 0.2]).best_so_far == 0.5


def test_eta_counts_the_trials_left_in_rounds_of_the_workers() -> None:
    durations = [60.0, 60.0]  # mean 60 s; 5 trials left
    assert study_progress(3, 7, durations, [0.1, 0.2], workers=1).eta_s == 300
    assert study_progress(3, 7, durations, [0.1, 0.2], workers=2).eta_s == 180  # 3 rounds: 2 + 2 + 1
    assert study_progress(3, 7, durations, [0.1, 0.2], workers=8).eta_s == 60


def test_best_value_history_is_stepped_by_index_with_the_best_of_the_trials_up_to_each() -> None:
    from redsm5_hpo.hpo.progress import best_value_history

    outcomes = [(1, 4, "complete", 0.3), (2, 5, "pruned", None), (3, 7, "complete", 0.6), (4, 8, "fail", None)]
    points = best_value_history(outcomes)
    assert [(p.trial, p.number) for p in points] == [(1, 4), (2, 5), (3, 7), (4, 8)]
    assert [p.best_so_far for p in points] == [0.3, 0.3, 0.6, 0.6]
    assert [p.completed for p in points] == [1, 1, 2, 2]
    assert [p.best_so_far for p in best_value_history(outcomes, "minimize")] == [0.3, 0.3, 0.3, 0.3]
    assert best_value_history([(1, 0, "fail", None)])[0].best_so_far is None


def test_the_study_time_follows_from_one_measured_step() -> None:
    from redsm5_hpo.hpo.progress import study_time_estimate

    # 0.2 s per step, 30 training + 9 validation batches (3 steps' worth), 5 epochs, 4 trials
    assert math.isclose(study_time_estimate(0.2, 30, 9, 5, 4), 0.2 * 33 * 5 * 4)
    assert math.isclose(study_time_estimate(0.2, 30, 9, 5, 4, workers=2), 0.2 * 33 * 5 * 2)
    assert math.isclose(study_time_estimate(0.2, 30, 9, 5, 3, workers=2), 0.2 * 33 * 5 * 2)  # 2 rounds


def test_the_first_epochs_give_an_eta_before_any_trial_ends() -> None:
    from redsm5_hpo.hpo.progress import early_eta

    assert early_eta(60, 1, 5, 4) == 60 * 5 * 4 - 60  # a trial is 5 minutes; one minute of it is done
    assert early_eta(120, 2, 5, 4, workers=2) == 300 * 2 - 120
    assert early_eta(60, 0, 5, 4) is None and early_eta(60, 1, 5, 0) is None
