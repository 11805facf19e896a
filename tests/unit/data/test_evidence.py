from redsm5_hpo.data.evidence import evidence_chars, token_labels, truncated_evidence_chars


def test_token_labels_mark_overlapping_tokens_and_skip_special_tokens() -> None:
    offsets = [(0, 0), (0, 2), (3, 7), (8, 12), (0, 0)]
    assert token_labels(offsets, [(3, 12)]) == [0, 0, 1, 1, 0]
    assert token_labels(offsets, []) == [0, 0, 0, 0, 0]


def test_truncation_counts_non_space_evidence_chars_past_the_cut() -> None:
    text = "ab cd ef"
    assert truncated_evidence_chars(text, [(0, 8)], kept_until=5) == (6, 2)
    assert evidence_chars(text, [(0, 5)]) == {0, 1, 3, 4}
