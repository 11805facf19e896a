import pytest
from hypothesis import given
from hypothesis import strategies as st

from redsm5_hpo.checkpoints.retention import (
    CheckpointRecord,
    RetentionPolicy,
    plan_retention,
    select_checkpoints_to_keep,
)


def records(objectives, size=10, weights=4):
    return [CheckpointRecord(i + 1, v, size, weights) for i, v in enumerate(objectives)]


@pytest.mark.parametrize(
    ("objectives", "last_n", "best_k", "expected"),
    [
        ([0.1, 0.5, 0.3], 1, 1, {2, 3}),
        ([0.1, 0.5, 0.7], 1, 1, {3}),
        ([0.5, 0.5, 0.2], 1, 1, {1, 2, 3}),  # co-best kept past the cap
        ([0.4, 0.6, 0.5, 0.1], 1, 2, {2, 3, 4}),
        ([0.4, 0.6, 0.5, 0.1], 2, 1, {2, 3, 4}),
        ([0.4, 0.6, 0.5, 0.1], 0, 1, {2, 4}),  # keep_last_n=0 still keeps the resume point
        ([], 1, 1, set()),
    ],
)
def test_retention_table(objectives, last_n, best_k, expected) -> None:
    assert select_checkpoints_to_keep(records(objectives), RetentionPolicy(last_n, best_k)) == expected


def test_best_only_checkpoints_are_made_lean_and_flagged() -> None:
    plan = plan_retention(records([0.9, 0.2, 0.3]), RetentionPolicy(1, 1, lean_best=True))
    assert plan.keep == {1, 3} and plan.make_lean == {1} and plan.delete == {2}
    assert plan.flags[1].co_best and plan.flags[1].is_best_k and not plan.flags[1].is_last_n
    assert plan.flags[3].is_last_n and not plan.flags[3].co_best
    assert not plan.flags[2].retained
    assert plan_retention(records([0.9, 0.2, 0.3]), RetentionPolicy(1, 1, lean_best=False)).make_lean == set()


def test_finished_trial_keeps_only_best_and_co_best() -> None:
    plan = plan_retention(records([0.9, 0.2, 0.9, 0.3]), RetentionPolicy(2, 1), trial_finished=True)
    assert plan.keep == {1, 3} and plan.make_lean == {1, 3}


def test_checkpoints_that_cannot_beat_the_study_best_are_only_resume_points() -> None:
    recs = records([0.6, 0.5, 0.4])
    assert plan_retention(recs, RetentionPolicy(1, 1), must_beat=0.7).keep == {3}
    assert plan_retention(recs, RetentionPolicy(1, 1), must_beat=0.6).keep == {3}  # a tie cannot displace the best
    assert plan_retention(recs, RetentionPolicy(1, 1), must_beat=0.55).keep == {1, 3}
    assert plan_retention(recs, RetentionPolicy(1, 1), trial_finished=True, must_beat=0.7).keep == set()


def test_size_cap_drops_unprotected_oldest_first() -> None:
    recs = records([0.9, 0.2, 0.3, 0.4], size=10, weights=4)  # best (lean: 4) + last 3 (10 each)
    assert plan_retention(recs, RetentionPolicy(3, 1, max_total_bytes=25)).keep == {1, 3, 4}  # 4 + 10 + 10
    assert plan_retention(recs, RetentionPolicy(3, 1, max_total_bytes=15)).keep == {1, 4}  # 4 + 10
    assert plan_retention(recs, RetentionPolicy(3, 1, max_total_bytes=1)).keep == {1, 4}  # protected survive the cap


policies = st.builds(
    RetentionPolicy,
    keep_last_n=st.integers(0, 3),
    keep_best_k=st.integers(1, 2),
    max_total_bytes=st.one_of(st.none(), st.integers(0, 200)),
    lean_best=st.booleans(),
)


@given(
    st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.5]), min_size=1, max_size=12),
    policies,
    st.booleans(),
    st.one_of(st.none(), st.sampled_from([0.0, 0.2, 0.5, 0.9])),
)
def test_retention_invariants(objectives, policy, finished, must_beat) -> None:
    recs = records(objectives)
    plan = plan_retention(recs, policy, trial_finished=finished, must_beat=must_beat)
    best = max(objectives)
    co_best = {r.epoch for r in recs if r.score == best and (must_beat is None or best > must_beat)}
    assert co_best <= plan.keep  # every co-best survives, whatever the cap
    if not finished:
        assert len(recs) in plan.keep and len(recs) not in plan.make_lean  # the newest stays resumable
    assert plan.keep | plan.delete == {r.epoch for r in recs} and not plan.keep & plan.delete
    assert plan.make_lean <= plan.keep
    non_co_best_best_k = {e for e, f in plan.flags.items() if f.is_best_k} - co_best
    assert len(non_co_best_best_k) <= policy.keep_best_k
    if policy.max_total_bytes is not None:
        kept_bytes = sum(
            r.weights_bytes if r.epoch in plan.make_lean else r.size_bytes for r in recs if r.epoch in plan.keep
        )
        protected = co_best | (set() if finished else {len(recs)})
        protected_bytes = sum(r.size_bytes for r in recs if r.epoch in protected)
        assert kept_bytes <= max(policy.max_total_bytes, protected_bytes)
