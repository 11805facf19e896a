from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from redsm5_hpo.data.splits import SPLITS, paper_split_post_ids, split_post_ids, stratum

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


def test_the_paper_split_is_scikit_learns_80_20_with_seed_42_and_validation_comes_from_the_80() -> None:
    from sklearn.model_selection import train_test_split

    ids = [f"post_{i:03d}" for i in range(97)][::-1]  # file order, not sorted order
    splits = paper_split_post_ids(ids, 0.1)
    reference_train, reference_test = train_test_split(ids, test_size=0.2, random_state=42)
    assert splits["test"] == sorted(reference_test) and len(splits["test"]) == 20
    assert sorted(splits["train"] + splits["validation"]) == sorted(reference_train)
    assert len(splits["validation"]) == round(97 * 0.1)
    assert paper_split_post_ids(ids, 0.3)["test"] == splits["test"]  # the validation share never moves test
    assert paper_split_post_ids(sorted(ids), 0.1)["test"] != splits["test"]  # the order of the file matters


def test_split_protocol_paper_on_the_sample_reproduces_the_published_test_split() -> None:
    import csv
    import dataclasses

    from sklearn.model_selection import train_test_split

    from redsm5_hpo.config.schema import DataConfig
    from redsm5_hpo.data.loading import load_corpus
    from redsm5_hpo.data.sources import SAMPLE_DIR

    with open(SAMPLE_DIR / "redsm5_posts.csv", newline="", encoding="utf-8") as f:
        file_order = [row["post_id"] for row in csv.DictReader(f)]
    _, reference_test = train_test_split(file_order, test_size=0.2, random_state=42)
    paper = dataclasses.replace(DataConfig(), split_protocol="paper")
    corpora = [load_corpus(paper, seed) for seed in (1, 2)]
    for corpus in corpora:
        assert [p.post_id for p in corpus.splits["test"]] == sorted(reference_test)
        assert {k: len(v) for k, v in corpus.splits.items()} == {"train": 234, "validation": 54, "test": 72}
    assert corpora[0].splits == corpora[1].splits  # the protocol fixes the seed
