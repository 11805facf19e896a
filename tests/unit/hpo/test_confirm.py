"""The confirmation's decisions: seeds, which configurations, which one wins, which checkpoints stay."""

import math
import statistics

import pytest
from scipy import stats

from redsm5_hpo.hpo.confirm import (
    BASELINE,
    CONFIRM,
    SEARCH,
    Run,
    answer,
    confirm_seeds,
    groups,
    kept,
    own_values,
    spread,
    top_configurations,
    winner,
)
from redsm5_hpo.hpo.retention import TrialSummary, select_release


def search(number: int, value: float | None, lr: float) -> Run:
    return Run(number, number + 1, SEARCH, {"train.lr_head": lr}, value)


def seed_run(number: int, group: int, value: float | None, seed: int = 1) -> Run:
    return Run(number, number + 1, CONFIRM, {}, value, group, seed)


def test_the_seeds_are_fixed_by_the_study_seed_and_distinct() -> None:
    assert confirm_seeds(13, 3) == confirm_seeds(13, 3)
    assert confirm_seeds(13, 3) != confirm_seeds(14, 3)
    assert len(set(confirm_seeds(13, 5))) == 5
    assert confirm_seeds(13, 2) == confirm_seeds(13, 3)[:2]  # more seeds extend, never reshuffle


def test_the_top_configurations_are_distinct_best_first_ties_to_the_earlier_trial() -> None:
    runs = [
        Run(0, 1, BASELINE, {"train.lr_head": 0.003}, 0.5),
        search(1, 0.7, 0.004),
        search(2, 0.7, 0.005),  # ties trial 2: the earlier one ranks first
        search(3, 0.9, 0.004),  # the same configuration as trial 2: one entry, its best trial
        search(4, None, 0.006),  # failed or pruned: no candidate
        seed_run(5, 0, 0.99),  # a confirmation trial is never a candidate
    ]
    top = top_configurations(runs, 3)
    assert [r.number for r in top] == [3, 2, 0]
    assert [r.number for r in top_configurations(runs, 10)] == [3, 2, 0]


def test_the_winner_has_the_best_mean_over_its_seeds_not_the_luckiest_seed() -> None:
    runs = [
        search(0, 0.8, 0.003),
        search(1, 0.7, 0.004),
        seed_run(2, 0, 0.95),
        seed_run(3, 0, 0.40),  # group 0: mean 0.675 with the luckiest single seed
        seed_run(4, 1, 0.70),
        seed_run(5, 1, 0.72),  # group 1: mean 0.71
    ]
    confirmed = groups(runs)
    assert [g.index for g in confirmed] == [0, 1]
    best = winner(confirmed)
    assert best is not None and best.index == 1
    assert answer(runs, confirmation_done=True).number == 5  # the winner's best seed
    assert answer(runs, confirmation_done=False).number == 0  # until then: the search's best
    tied = [seed_run(0, 0, 0.5), seed_run(1, 1, 0.5)]
    assert winner(groups(tied)).index == 0  # a tie goes to the configuration ranked higher in the search


def test_retention_keeps_each_configurations_best_seed_until_the_confirmation_ends_then_the_winners() -> None:
    summaries = [
        TrialSummary(0, True, 0.8, stage=SEARCH),
        TrialSummary(1, True, 0.7, stage=SEARCH),
        TrialSummary(2, True, 0.9, stage=CONFIRM, group=0),
        TrialSummary(3, True, 0.3, stage=CONFIRM, group=0),
        TrialSummary(4, True, 0.7, stage=CONFIRM, group=1),
        TrialSummary(5, True, 0.75, stage=CONFIRM, group=1),
    ]
    release, keep = select_release(summaries, confirmation_done=False)
    assert keep == {0, 2, 5}  # the search's best, and each configuration's best seed so far
    assert release == {1, 3, 4}
    release, keep = select_release(summaries, confirmation_done=True)
    assert keep == {5}  # group 1 wins on its mean (0.725 > 0.6): its best seed alone
    assert release == {0, 1, 2, 3, 4}
    runs = [Run(t.number, t.rank, t.stage, {}, t.value, t.group) for t in summaries]
    assert kept(runs, True) == {5}


def test_the_spread_is_the_mean_the_sample_std_and_the_students_t_interval() -> None:
    values = [0.71, 0.74, 0.69]
    result = spread(values, 0.95)
    mean, std = statistics.fmean(values), statistics.stdev(values)
    half = stats.t.ppf(0.975, 2) * std / math.sqrt(3)
    assert result["mean"] == pytest.approx(mean)
    assert result["std"] == pytest.approx(std)
    assert result["interval"] == pytest.approx([mean - half, mean + half])
    assert spread([0.5, 0.5], 0.95) == {"mean": 0.5, "std": 0.0, "interval": [0.5, 0.5]}


def test_a_baselines_own_values_are_spelled_as_the_search_space_spells_them() -> None:
    assert own_values({"augment.methods": [], "train.lr_head": 0.003}) == {
        "augment.methods": "none",
        "train.lr_head": 0.003,
    }
    assert own_values({"augment.methods": ["synonym", "swap"]}) == {"augment.methods": "synonym+swap"}
