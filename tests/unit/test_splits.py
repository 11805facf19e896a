from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from redsm5_hpo.data.splits import SPLITS, split_post_ids, stratum

label_rows = st.lists(st.lists(st.integers(0, 1), min_size=3, max_size=3), min_size=1, max_size=80)


@settings(max_examples=60)
@given(label_rows, st.integers(0, 10_000))
def test_splits_are_disjoint_complete_and_deterministic(labels: list[list[int]], seed: int) -> None:
    ids = [f"p{i}" for i in range(len(labels))]
    splits = split_post_ids(ids, labels, 0.2, 0.2, seed)
    assert set(splits) == set(SPLITS)
    all_ids = [i for name in SPLITS for i in splits[name]]
    assert sorted(all_ids) == sorted(ids)  # every post exactly once: disjoint and complete
    assert split_post_ids(ids, labels, 0.2, 0.2, seed) == splits


def test_seed_changes_assignment_but_not_sizes() -> None:
    labels = [[i % 2, (i // 2) % 2, 0] for i in range(100)]
    ids = [f"p{i}" for i in range(100)]
    a, b = split_post_ids(ids, labels, 0.15, 0.15, 1), split_post_ids(ids, labels, 0.15, 0.15, 2)
    assert a != b
    assert {k: len(v) for k, v in a.items()} == {k: len(v) for k, v in b.items()}


def test_strata_are_spread_over_every_split() -> None:
    labels = [[1, 0, 0]] * 40 + [[0, 1, 0]] * 40 + [[0, 0, 0]] * 20
    ids = [f"p{i}" for i in range(100)]
    splits = split_post_ids(ids, labels, 0.2, 0.2, 0)
    frequency = [40, 40, 0]
    for name in SPLITS:
        counts = Counter(stratum(labels[int(i[1:])], frequency) for i in splits[name])
        assert set(counts) == {0, 1, -1}
    assert len(splits["test"]) == 20 and len(splits["validation"]) == 20


def test_stratum_is_rarest_positive_label() -> None:
    assert stratum([1, 1, 0], [10, 3, 1]) == 1
    assert stratum([0, 0, 0], [10, 3, 1]) == -1


def test_sample_corpus_splits_are_disjoint(sample_corpus) -> None:
    ids = {name: {p.post_id for p in posts} for name, posts in sample_corpus.splits.items()}
    assert (
        not ids["train"] & ids["validation"] and not ids["train"] & ids["test"] and not ids["validation"] & ids["test"]
    )
    assert sum(map(len, ids.values())) == sample_corpus.stats.posts
