"""A study's stopping rules: the time budget and the plateau."""

from redsm5_hpo.config.schema import HpoConfig
from redsm5_hpo.hpo.stopping import PLATEAU, TIMEOUT, budget_spent, describe, plateaued, trials_since_improvement


def test_the_budget_is_spent_once_that_long_has_passed_since_it_started() -> None:
    assert not budget_spent(100.0, 159.9, 60)
    assert budget_spent(100.0, 160.0, 60)
    assert not budget_spent(0.0, 1e9, None)  # no budget: never spent


def test_a_plateau_counts_the_trials_since_the_last_improvement_above_the_margin() -> None:
    values = [0.5, 0.6, 0.605, None, 0.61, 0.7, 0.69]
    assert trials_since_improvement(values, 0.0) == 1  # 0.7 improved; 0.69 did not
    assert trials_since_improvement(values, 0.01) == 1  # 0.7 beats 0.6 by more than 0.01
    assert trials_since_improvement(values[:5], 0.01) == 3  # 0.605 and 0.61 are within the margin of 0.6
    assert trials_since_improvement([None, None], 0.0) == 2  # nothing completed: every trial counts
    assert plateaued(values[:5], 3, 0.01) and not plateaued(values[:5], 4, 0.01)
    assert not plateaued(values, None, 0.0)  # no patience: never


def test_the_reason_names_the_setting_that_stopped_the_study() -> None:
    assert "hpo.timeout_s=60" in describe(TIMEOUT, HpoConfig(timeout_s=60.0))
    assert "hpo.patience_trials=3" in describe(PLATEAU, HpoConfig(patience_trials=3, min_improvement=0.01))
