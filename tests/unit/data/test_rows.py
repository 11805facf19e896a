"""Release rows cleaned before the corpus is built: what is repaired, skipped (ids and counts) or refused."""

import pytest

from redsm5_hpo.data.errors import DataError
from redsm5_hpo.data.rows import clean_release


def annotation(post_id: str, status: object, label: str = "FATIGUE", sentence_id: str | None = None) -> dict:
    return {
        "post_id": post_id,
        "sentence_id": sentence_id if sentence_id is not None else f"{post_id}_0",
        "sentence_text": "I am tired.",
        "DSM5_symptom": label,
        "status": status,
        "explanation": "",
    }


@pytest.mark.parametrize(
    ("status", "kept"),
    [(1, 1), (0, 0), ("1", 1), ("0", 0), (" 1 ", 1), ("1.0", 1), (0.0, 0), (True, 1), ("true", 1), ("FALSE", 0)],
)
def test_status_spellings_of_0_and_1_are_read(status, kept) -> None:
    cleaned = clean_release([{"post_id": "a", "text": "I am tired."}], [annotation("a", status)], "src")
    assert [r["status"] for r in cleaned.annotations] == [kept] and cleaned.skipped == {}


@pytest.mark.parametrize("status", ["yes", "2", "", None, 0.5, "-1"])
def test_any_other_status_skips_the_row_by_its_id(status) -> None:
    cleaned = clean_release([{"post_id": "a", "text": "I am tired."}], [annotation("a", status)], "src")
    assert cleaned.annotations == []
    assert cleaned.skipped == {"annotation row(s) whose status is not 0 or 1": ["a_0"]}


def test_ids_are_stripped_and_labels_normalized() -> None:
    cleaned = clean_release(
        [{"post_id": " a ", "text": "x"}], [annotation(" a", 1, label=" fatigue ", sentence_id="a_0 ")], "src"
    )
    assert cleaned.posts[0]["post_id"] == "a" and cleaned.annotations[0]["DSM5_symptom"] == "FATIGUE"
    assert cleaned.annotations[0]["sentence_id"] == "a_0" and cleaned.stripped_ids == 3


def test_posts_without_text_or_id_are_skipped_with_their_rows() -> None:
    posts = [{"post_id": "a", "text": "  "}, {"post_id": "", "text": "orphan"}, {"post_id": "b", "text": "ok"}]
    cleaned = clean_release(posts, [annotation("a", 1), annotation("b", 1)], "src")
    assert [p["post_id"] for p in cleaned.posts] == ["b"] and [r["post_id"] for r in cleaned.annotations] == ["b"]
    assert cleaned.skipped == {
        "post(s) without text": ["a"],
        "post(s) without a post_id": ["posts row 2"],
        "annotation row(s) of a skipped post": ["a_0"],
    }


def test_a_repeated_post_is_kept_once_and_a_conflicting_one_refused() -> None:
    same = [{"post_id": "a", "text": "x"}, {"post_id": "a", "text": "x"}]
    cleaned = clean_release(same, [], "src")
    assert len(cleaned.posts) == 1 and cleaned.skipped == {"repeated post row(s) with the same text": ["a"]}
    with pytest.raises(
        DataError, match=r"1 post_id\(s\) appear more than once with different texts \(first: \['a'\]\)"
    ):
        clean_release([{"post_id": "a", "text": "x"}, {"post_id": "a", "text": "y"}], [], "src")


def test_unknown_labels_and_orphan_rows_stop_the_run() -> None:
    posts = [{"post_id": "a", "text": "x"}]
    with pytest.raises(DataError, match="unknown DSM5_symptom"):
        clean_release(posts, [annotation("a", 1, label="ANXIETY")], "src")
    with pytest.raises(DataError, match="have no post"):
        clean_release(posts, [annotation("zz", 1)], "src")
