import pytest
from hypothesis import given
from hypothesis import strategies as st

from redsm5_hpo.checkpoints.retention import CheckpointRecord, select_checkpoints_to_keep


@pytest.mark.parametrize(
    ("objectives", "last_n", "best_k", "expected"),
    [
        ([0.1, 0.5, 0.3], 1, 1, {2, 3}),
        ([0.1, 0.5, 0.7], 1, 1, {3}),
        ([0.5, 0.5, 0.2], 1, 1, {1, 2, 3}),  # co-best kept past the cap
        ([0.4, 0.6, 0.5, 0.1], 1, 2, {2, 3, 4}),
        ([0.4, 0.6, 0.5, 0.1], 2, 1, {2, 3, 4}),
        ([], 1, 1, set()),
    ],
)
def test_retention_table(objectives, last_n, best_k, expected) -> None:
    records = [CheckpointRecord(i + 1, v) for i, v in enumerate(objectives)]
    assert select_checkpoints_to_keep(records, last_n, best_k) == expected


@given(st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.5]), min_size=1, max_size=12), st.integers(1, 3), st.integers(1, 2))
def test_retention_invariants(objectives, last_n, best_k) -> None:
    records = [CheckpointRecord(i + 1, v) for i, v in enumerate(objectives)]
    keep = select_checkpoints_to_keep(records, last_n, best_k)
    best = max(objectives)
    assert len(records) in keep  # the newest (resume-capable) checkpoint survives
    assert {r.epoch for r in records if r.objective == best} <= keep  # every co-best survives
    n_cobest = sum(1 for v in objectives if v == best)
    assert len(keep) <= last_n + max(best_k, n_cobest)
