from hypothesis import given
from hypothesis import strategies as st

from redsm5_hpo.data.evidence import evidence_chars, locate_sentence, token_labels, truncated_evidence_chars


def test_exact_match() -> None:
    text = "I have a dog. I feel sad every day. Bye."
    assert locate_sentence(text, "I feel sad every day.") == (14, 35)


def test_whitespace_quotes_and_case_differences_are_tolerated() -> None:
    text = "Hi.  To  be honest, I can\u2019t SLEEP at all.\nThanks."
    start, end = locate_sentence(text, "To be honest, I can't sleep at all.")
    assert text[start:end] == "To  be honest, I can\u2019t SLEEP at all."


def test_absent_sentence_is_none() -> None:
    assert locate_sentence("I am fine.", "I am sad.") is None
    assert locate_sentence("I am fine.", "   ") is None


@given(st.text(alphabet="ab .,'\n", min_size=1, max_size=40), st.integers(0, 40), st.integers(1, 20))
def test_located_span_always_matches_after_normalization(text: str, start: int, length: int) -> None:
    sentence = text[start : start + length]
    span = locate_sentence(text, sentence)
    if sentence.strip():
        assert span is not None
        found = text[span[0] : span[1]]
        assert " ".join(found.split()) == " ".join(sentence.split())


def test_token_labels_mark_overlapping_tokens_and_skip_special_tokens() -> None:
    offsets = [(0, 0), (0, 2), (3, 7), (8, 12), (0, 0)]
    assert token_labels(offsets, [(3, 12)]) == [0, 0, 1, 1, 0]
    assert token_labels(offsets, []) == [0, 0, 0, 0, 0]


def test_truncation_counts_non_space_evidence_chars_past_the_cut() -> None:
    text = "ab cd ef"
    assert truncated_evidence_chars(text, [(0, 8)], kept_until=5) == (6, 2)
    assert evidence_chars(text, [(0, 5)]) == {0, 1, 3, 4}
