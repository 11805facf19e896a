"""The tracker's pure decisions: backoff, batches, duplicates, replay order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from redsm5_hpo.tracking.journal import Pending
from redsm5_hpo.tracking.records import backoff_delay, replay_order, take_batch, unseen_metrics


def test_backoff_is_1_2_4_8_16_then_stays_at_16() -> None:
    assert [backoff_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 16, 16]


def pending(entries: list[dict]) -> list[Pending]:
    return [Pending(None, i, e) for i, e in enumerate(entries)]  # type: ignore[arg-type]


def test_batches_group_consecutive_metrics_of_one_run() -> None:
    entries = [
        {"kind": "metric", "run_id": "a", "metric": "m", "step": 1, "timestamp": 1},
        {"kind": "metric", "run_id": "a", "metric": "n", "step": 1, "timestamp": 1},
        {"kind": "metric", "run_id": "b", "metric": "m", "step": 1, "timestamp": 2},
        {"kind": "tags", "run_id": "b", "tags": {}},
    ]
    queue = pending(entries)
    assert [p.position for p in take_batch(queue)] == [0, 1]
    assert [p.position for p in take_batch(queue[2:])] == [2]
    assert [p.position for p in take_batch(queue[3:])] == [3]
    assert len(take_batch(pending([entries[0]] * 30), limit=10)) == 10


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 5), st.integers(0, 5)), max_size=40))
def test_dedupe_keeps_the_first_record_of_each_metric_and_step_not_already_held(records) -> None:
    entries = [{"metric": m, "step": s, "timestamp": t, "value": float(t)} for m, s, t in records]
    held = {(m, s) for m, s, _ in records[: len(records) // 2]}
    fresh = unseen_metrics(entries, held)
    keys = [(e["metric"], e["step"]) for e in fresh]
    assert len(keys) == len(set(keys))  # another timestamp does not make a record new
    assert set(keys) == {(m, s) for m, s, _ in records} - held
    for e in fresh:  # the first value logged at a step is the one kept
        first = next(x for x in entries if (x["metric"], x["step"]) == (e["metric"], e["step"]))
        assert e is first


@given(st.lists(st.lists(st.integers(0, 100), max_size=10), max_size=4))
def test_replay_merges_segments_by_timestamp_keeping_each_segment_in_order(groups) -> None:
    segments = [pending([{"timestamp": t, "step": 0, "seg": g} for t in sorted(ts)]) for g, ts in enumerate(groups)]
    merged = replay_order(segments)
    assert [p.entry["timestamp"] for p in merged] == sorted(t for ts in groups for t in ts)
    for g in range(len(groups)):
        assert [p.position for p in merged if p.entry["seg"] == g] == list(range(len(groups[g])))
