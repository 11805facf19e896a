"""Evidence alignment: each method on the kind of mismatch it is for, in order, and what none can find."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redsm5_hpo.data.alignment import align, sentence_index

POST = "Hi all. I feel sad every day. I can\u2019t sleep \u2013 at all. Thanks for reading."


@pytest.mark.parametrize(
    ("sentence", "sentence_id", "method", "expected"),
    [
        ("I feel sad every day.", "p_1", "exact", "I feel sad every day."),
        ("I  feel sad\nevery day.", "p_1", "normalized", "I feel sad every day."),  # whitespace
        ("I can't sleep - at all.", "p_2", "normalized", "I can\u2019t sleep \u2013 at all."),  # quote and dash
        ("i FEEL sad EVERY day.", "p_1", "normalized", "I feel sad every day."),  # case
        ("Sadness is my everyday companion.", "p_1", "sentence_index", "I feel sad every day."),  # paraphrase, id
        ("I feel so sad every single day.", "", "fuzzy", "I feel sad every day."),  # paraphrase, no usable id
        ("I feel so sad every single day.", "p_9", "fuzzy", "I feel sad every day."),  # index out of range
        ("Thanks for reading everyone.", "other_3", "fuzzy", "Thanks for reading."),  # id of another post
    ],
)
def test_each_method_finds_its_kind_of_mismatch(sentence, sentence_id, method, expected) -> None:
    found = align(POST, sentence, sentence_id, "p", fuzzy_threshold=80)
    assert found.method == method
    assert found.span is not None and POST[found.span[0] : found.span[1]] == expected


def test_sentences_merged_or_split_differently_are_found_whole() -> None:
    post = "I can't focus. I cannot concentrate on anything at work, it scares me. Bye."
    merged = "I can't focus, I cannot concentrate on anything at work and it scares me."
    found = align(post, merged, "", "p", fuzzy_threshold=80)
    assert found.method == "fuzzy"
    assert (
        post[found.span[0] : found.span[1]] == "I can't focus. I cannot concentrate on anything at work, it scares me."
    )


@pytest.mark.parametrize(
    ("sentence", "sentence_id"),
    [("Something completely unrelated to the text.", "q_1"), ("", ""), ("   ", "p_x")],
)
def test_what_no_method_finds_is_not_aligned(sentence, sentence_id) -> None:
    found = align(POST, sentence, sentence_id, "p", fuzzy_threshold=80)
    assert found.span is None and found.method is None


def test_the_fuzzy_threshold_decides() -> None:
    paraphrase = "I am feeling sad on most days."
    assert align(POST, paraphrase, "", "p", fuzzy_threshold=99).method is None
    assert align(POST, paraphrase, "", "p", fuzzy_threshold=50).method == "fuzzy"


@pytest.mark.parametrize(
    ("sentence_id", "post_id", "index"),
    [
        ("s_12_3", "s_12", 3),
        ("s_12_03", "s_12", 3),
        (" s_12_0 ", "s_12", 0),
        ("s_1_3", "s_12", None),
        ("s_12", "s_12", None),
    ],
)
def test_sentence_index_reads_the_release_id(sentence_id, post_id, index) -> None:
    assert sentence_index(sentence_id, post_id) == index


@given(st.text(alphabet="ab .,'\n", min_size=1, max_size=40), st.integers(0, 40), st.integers(1, 20))
def test_any_piece_of_the_post_is_found_exactly_or_after_normalization(text: str, start: int, length: int) -> None:
    sentence = text[start : start + length]
    found = align(text, sentence, "", "p", fuzzy_threshold=80)
    if sentence.strip():
        assert found.method in ("exact", "normalized")
        piece = text[found.span[0] : found.span[1]]
        assert " ".join(piece.split()) == " ".join(sentence.split())
