import csv
import logging
import shutil
from pathlib import Path

import pytest

from redsm5_hpo.config.schema import DataConfig
from redsm5_hpo.data.corpus import build_posts
from redsm5_hpo.data.errors import DataError
from redsm5_hpo.data.evidence import sentence_spans
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.data.sources import SAMPLE_DIR, load_release
from redsm5_hpo.labels import SYMPTOMS


def copy_sample(tmp_path: Path) -> Path:
    target = tmp_path / "release"
    shutil.copytree(SAMPLE_DIR, target)
    return target


def rewrite_csv(path: Path, transform) -> None:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows, fieldnames = transform(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def test_sample_matches_the_release_schema_and_mission_mix(sample_corpus) -> None:
    stats = sample_corpus.stats
    assert stats.posts >= 300 and stats.special_case_rows > 0 and stats.negated_rows > 0
    assert 0.15 < stats.symptom_free_posts / stats.posts < 0.35
    assert stats.unlocated_evidence == 0 and stats.skipped == {}
    assert min(stats.label_counts.values()) >= 5  # the rarest (PSYCHOMOTOR) at the release's share
    multi = sum(1 for posts in sample_corpus.splits.values() for p in posts if sum(p.labels) > 1)
    assert multi > 30
    assert sample_corpus.revision.startswith("sha256:")


def test_local_directory_source_has_content_hash_revision(tmp_path: Path, sample_corpus) -> None:
    directory = copy_sample(tmp_path)
    corpus = load_corpus(DataConfig(source=str(directory)), seed=13)
    assert corpus.revision == sample_corpus.revision
    assert {k: [p.post_id for p in v] for k, v in corpus.splits.items()} == {
        k: [p.post_id for p in v] for k, v in sample_corpus.splits.items()
    }
    (directory / "redsm5_posts.csv").write_text((directory / "redsm5_posts.csv").read_text() + 's_9999,"extra post"\n')
    assert load_corpus(DataConfig(source=str(directory)), seed=13).revision != sample_corpus.revision


def test_missing_file_names_source_expected_and_found(tmp_path: Path) -> None:
    directory = copy_sample(tmp_path)
    (directory / "redsm5_annotations.csv").unlink()
    with pytest.raises(DataError) as error:
        load_release(DataConfig(source=str(directory)))
    message = str(error.value)
    assert str(directory) in message and "redsm5_annotations.csv" in message and "redsm5_posts.csv" in message


def test_missing_column_names_required_and_found(tmp_path: Path) -> None:
    directory = copy_sample(tmp_path)
    rewrite_csv(
        directory / "redsm5_annotations.csv",
        lambda rows: (
            [{k: v for k, v in r.items() if k != "status"} for r in rows],
            [k for k in rows[0] if k != "status"],
        ),
    )
    with pytest.raises(DataError) as error:
        load_release(DataConfig(source=str(directory)))
    assert "missing column(s) ['status']" in str(error.value) and "sha256:" in str(error.value)


def test_predefined_splits_are_kept_and_missing_ones_reported(tmp_path: Path) -> None:
    directory = copy_sample(tmp_path)
    names = ["tr", "dev", "te"]
    rewrite_csv(
        directory / "redsm5_posts.csv",
        lambda rows: ([{**r, "split": names[i % 3]} for i, r in enumerate(rows)], ["post_id", "text", "split"]),
    )
    cfg = DataConfig(source=str(directory), split_names={"train": "tr", "validation": "dev", "test": "te"})
    corpus = load_corpus(cfg, seed=1)
    assert corpus.predefined_splits
    assert {len(v) for v in corpus.splits.values()} == {120}
    with pytest.raises(DataError, match=r"missing \['test'\]"):
        load_corpus(
            DataConfig(source=str(directory), split_names={"train": "tr", "validation": "dev", "test": "test"}), seed=1
        )


def test_unreachable_hub_dataset_is_an_actionable_error() -> None:
    with pytest.raises(DataError) as error:
        load_release(DataConfig(source="no-such-org/no-such-dataset", revision="v1"))
    assert "no-such-org/no-such-dataset" in str(error.value) and "hf auth login" in str(error.value)


def test_labels_ignore_negations_and_special_cases() -> None:
    posts = [
        {"post_id": "a", "text": "I feel sad. I sleep fine. Panic at work."},
        {"post_id": "b", "text": "Nothing here."},
    ]
    rows = [
        {"post_id": "a", "sentence_text": "I feel sad.", "DSM5_symptom": "DEPRESSED_MOOD", "status": 1},
        {"post_id": "a", "sentence_text": "I sleep fine.", "DSM5_symptom": "SLEEP_ISSUES", "status": 0},
        {"post_id": "a", "sentence_text": "Panic at work.", "DSM5_symptom": "SPECIAL_CASE", "status": 1},
    ]
    built, stats = build_posts(posts, rows, "test", "split")
    a, b = built
    assert a.labels[SYMPTOMS.index("DEPRESSED_MOOD")] == 1 and sum(a.labels) == 1
    assert a.evidence == ((0, 11),)
    assert sum(b.labels) == 0 and b.evidence == ()
    assert (stats.special_case_rows, stats.negated_rows, stats.symptom_free_posts) == (1, 1, 1)


def test_unknown_label_and_orphan_annotations_are_rejected() -> None:
    posts = [{"post_id": "a", "text": "x"}]
    with pytest.raises(DataError, match="unknown DSM5_symptom value"):
        build_posts(
            posts, [{"post_id": "a", "sentence_text": "x", "DSM5_symptom": "ANXIETY", "status": 1}], "src", "split"
        )
    with pytest.raises(DataError, match="have no post"):
        build_posts(
            posts, [{"post_id": "zz", "sentence_text": "x", "DSM5_symptom": "FATIGUE", "status": 1}], "src", "split"
        )


def sample_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_sample_data", Path(__file__).resolve().parents[3] / "scripts" / "make_sample_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_generator_is_deterministic(tmp_path: Path) -> None:
    sample_generator().write_sample(tmp_path, 360, 5)
    for name in ("redsm5_posts.csv", "redsm5_annotations.csv"):
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("n_posts", [360, 1484])
def test_the_sample_has_the_release_label_frequencies(tmp_path: Path, n_posts: int) -> None:
    generator = sample_generator()
    generator.write_sample(tmp_path, n_posts, 5)
    posts, rows = read_csv(tmp_path / "redsm5_posts.csv"), read_csv(tmp_path / "redsm5_annotations.csv")
    with_label: dict[str, set[str]] = {}
    for row in rows:
        if row["status"] == "1":
            with_label.setdefault(row["DSM5_symptom"], set()).add(row["post_id"])
    counts, none = generator.scaled_counts(n_posts)
    assert {label: len(ids) for label, ids in with_label.items()} == counts
    assert len(posts) - len(set().union(*with_label.values())) == none
    if n_posts == 1484:  # the release's own numbers
        assert counts == generator.RELEASE_POSTS and none == 392


def test_the_sample_has_a_long_tail_with_late_evidence_and_indexed_sentence_ids() -> None:
    posts = {p["post_id"]: p["text"] for p in read_csv(SAMPLE_DIR / "redsm5_posts.csv")}
    rows = read_csv(SAMPLE_DIR / "redsm5_annotations.csv")
    words = {post_id: len(text.split()) for post_id, text in posts.items()}
    assert sum(n > 400 for n in words.values()) >= 5 and sum(n > 2000 for n in words.values()) >= 2
    for post_id in (p for p, n in words.items() if n > 2000):
        starts = [posts[post_id].find(r["sentence_text"]) for r in rows if r["post_id"] == post_id]
        assert starts and all(start > len(posts[post_id]) // 2 for start in starts if start >= 0)
    differs = 0
    for row in rows:
        post_id, _, k = row["sentence_id"].rpartition("_")
        assert post_id == row["post_id"]
        first, last = sentence_spans(posts[post_id])[int(k)]  # the index names the row's sentence
        differs += posts[post_id][first:last] != row["sentence_text"]
        if row["sentence_text"] in posts[post_id]:
            assert first <= posts[post_id].find(row["sentence_text"]) < last
    assert 0.10 < differs / len(rows) < 0.25


def damage(directory: Path, file: str, change) -> None:
    path = directory / file
    path.write_bytes(change(path.read_bytes()))


def first_row(data: bytes) -> bytes:
    return data.splitlines(keepends=True)[1]


POSTS, ANNOTATIONS = "redsm5_posts.csv", "redsm5_annotations.csv"


def not_utf8(data: bytes) -> bytes:
    """A byte that is not UTF-8 in the first post's text (line 2)."""
    return data.replace(first_row(data), first_row(data).replace(b",", b",\xff", 1), 1)


def first_quoted_line(data: bytes) -> int:
    return next(n for n, line in enumerate(data.splitlines(), 1) if line.endswith(b'"') and b',"' in line)


def unterminated(data: bytes) -> bytes:
    """The closing quote of the first quoted post removed."""
    lines = data.splitlines(keepends=True)
    n = first_quoted_line(data) - 1
    lines[n] = lines[n].rstrip(b'"\n') + b"\n"
    return b"".join(lines)


SAMPLE_POSTS = (SAMPLE_DIR / POSTS).read_bytes()
FIRST_MOOD_ROW = next(
    line for line in (SAMPLE_DIR / ANNOTATIONS).read_bytes().splitlines() if b",DEPRESSED_MOOD,1," in line
)
REFUSED = {
    "empty posts file": (POSTS, lambda d: b"", ["is empty"]),
    "annotations with a header only": (ANNOTATIONS, lambda d: d.splitlines(keepends=True)[0], ["header but no rows"]),
    "bytes that are not UTF-8": (POSTS, not_utf8, ["not UTF-8", "line 2"]),
    "an unterminated quote": (POSTS, unterminated, [f"line {first_quoted_line(SAMPLE_POSTS)}", "quote"]),
    "one post_id with two texts": (
        POSTS,
        lambda d: d + first_row(d).replace(b",", b",Another text. ", 1),
        [first_row(SAMPLE_POSTS).split(b",")[0].decode()],
    ),
}
KEPT = {
    "a status that is not 0 or 1": (
        ANNOTATIONS,
        lambda d: d.replace(b",DEPRESSED_MOOD,1,", b",DEPRESSED_MOOD,yes,", 1),
        f"skipped 1 annotation row(s) whose status is not 0 or 1: {FIRST_MOOD_ROW.split(b',')[1].decode()}",
    ),
    "an empty post text": (
        POSTS,
        lambda d: d.replace(first_row(d), b"s_0000,\n", 1),
        "skipped 1 post(s) without text: s_0000",
    ),
    "a post row repeated": (POSTS, lambda d: d + first_row(d), "skipped 1 repeated post row(s) with the same text"),
    "ids with spaces": (POSTS, lambda d: d.replace(b"s_0000,", b" s_0000 ,", 1), "1 id(s) had whitespace"),
    "a byte-order mark and Windows line endings": (POSTS, lambda d: b"\xef\xbb\xbf" + d.replace(b"\n", b"\r\n"), None),
    "an extra column": (ANNOTATIONS, lambda d: b"\n".join(x + b",x" if x else x for x in d.split(b"\n")), None),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_damaged_release_file_is_one_error_naming_source_revision_file_and_fix(tmp_path: Path, case) -> None:
    file, change, needles = REFUSED[case]
    directory = copy_sample(tmp_path)
    damage(directory, file, change)
    with pytest.raises(DataError) as error:
        load_corpus(DataConfig(source=str(directory)), seed=13)
    message = str(error.value)
    assert str(directory) in message
    for needle in needles:
        assert needle in message
    if "post_id" not in case:  # read before parsing: the revision and the file are named
        assert "sha256:" in message and file in message


@pytest.mark.parametrize("case", list(KEPT))
def test_a_release_with_odd_rows_trains_and_says_what_it_skipped(tmp_path: Path, case, caplog) -> None:
    file, change, warning = KEPT[case]
    directory = copy_sample(tmp_path)
    damage(directory, file, change)
    with caplog.at_level(logging.WARNING, logger="redsm5_hpo"):
        corpus = load_corpus(DataConfig(source=str(directory)), seed=13)
    assert sum(map(len, corpus.splits.values())) >= 359
    if warning:
        assert warning in caplog.text
    else:
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "I cry myself to sleep" not in caplog.text  # ids and counts, never post text


def test_the_cli_exits_2_without_a_traceback_on_a_damaged_file(tmp_path: Path, capsys) -> None:
    from redsm5_hpo.cli.main import EXIT_USER_ERROR, main
    from tests.conftest import CONFIG_DIR

    directory = copy_sample(tmp_path)
    damage(directory, POSTS, not_utf8)
    code = main(["train", "--dry-run", "model=tiny", f"data.source={directory}", "--config-dir", str(CONFIG_DIR)])
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR and "is not UTF-8 text: line 2" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_the_sample_aligns_every_evidence_sentence(sample_corpus) -> None:
    quality = sample_corpus.stats.quality()
    assert quality["aligned"] == quality["evidence_sentences"] > 300 and quality["unaligned_sentence_ids"] == []
    assert all(quality["aligned_by"][method] > 10 for method in ("exact", "normalized", "sentence_index"))
