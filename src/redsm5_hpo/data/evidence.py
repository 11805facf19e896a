"""Evidence as character spans of its post: sentences, spans as token labels and characters.

Finding an annotated sentence in its post is ``alignment.py``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SENTENCE = re.compile(r'[^\s][^\n]*?(?:[.!?]+["\')\]]*(?=\s|$)|(?=\n)|$)')
Span = tuple[int, int]


def token_labels(offsets: Sequence[Span], spans: Sequence[Span]) -> list[int]:
    """1 for each token whose characters overlap an evidence span; special tokens (0, 0) get 0."""
    return [
        int(end > start and any(start < s_end and end > s_start for s_start, s_end in spans)) for start, end in offsets
    ]


def truncated_evidence_chars(text: str, spans: Sequence[Span], kept_until: int) -> tuple[int, int]:
    """(non-space evidence chars, of which past ``kept_until``): the share truncation loses."""
    total = lost = 0
    for s_start, s_end in spans:
        for i in range(s_start, s_end):
            if not text[i].isspace():
                total += 1
                lost += i >= kept_until
    return total, lost


def evidence_chars(text: str, spans: Sequence[Span]) -> set[int]:
    """Indices of the non-space characters covered by ``spans``."""
    return {i for s, e in spans for i in range(s, e) if not text[i].isspace()}


def sentence_spans(text: str) -> list[Span]:
    """Sentences of ``text`` as character spans: a sentence ends at ``.``, ``!`` or ``?`` (and closing
    quotes or brackets) before whitespace, at a line break, or at the end of the text."""
    return [(m.start(), m.end()) for m in SENTENCE.finditer(text)]


def token_span(offsets: Sequence[Span], span: Span) -> tuple[int, int] | None:
    """First and last token (inclusive) whose characters overlap ``span``; None if truncation cut it off.
    Tokens with an empty offset (special tokens) never count."""
    s_start, s_end = span
    inside = [i for i, (start, end) in enumerate(offsets) if end > start and start < s_end and end > s_start]
    return (inside[0], inside[-1]) if inside else None


def sentence_is_evidence(text: str, sentence: Span, evidence: set[int]) -> bool:
    """True when at least half of the sentence's non-space characters are evidence characters."""
    chars = evidence_chars(text, [sentence])
    return bool(chars) and 2 * len(chars & evidence) >= len(chars)
