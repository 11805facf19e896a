"""Where an annotated evidence sentence sits in its post, when the annotation's text may differ from the
post's: each method is tried in this order, and the first that finds it wins.

1. ``exact``: the sentence occurs verbatim.
2. ``normalized``: it occurs once whitespace runs, unicode quotes and dashes and letter case are unified.
3. ``sentence_index``: the release's ``sentence_id`` is ``<post_id>_<k>``; the k-th sentence (0-based) of
   the post as ``evidence.sentence_spans`` splits it, when k is in range. The index is trusted as given.
4. ``fuzzy``: the run of one to three consecutive post sentences most similar to the annotation, if
   it scores at least ``fuzzy_threshold`` (rapidfuzz's ``ratio`` after normalizing, 0-100): a paraphrase,
   a word changed, sentences split or merged differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from redsm5_hpo.data.evidence import Span, sentence_spans

METHODS = ("exact", "normalized", "sentence_index", "fuzzy")
FUZZY_WINDOW = 3
"""A fuzzy match may span this many consecutive sentences (an annotation that merges sentences)."""
UNIFY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u00b4": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
    }
)


@dataclass(frozen=True)
class Alignment:
    span: Span | None
    """Character span in the post; None when no method found the sentence."""
    method: str | None
    """One of ``METHODS``, or None."""


def normalize(text: str) -> tuple[str, list[int]]:
    """Collapse whitespace runs, unify quotes and dashes, lower-case; keep each output char's source index."""
    chars: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text.translate(UNIFY).lower()):
        if ch.isspace():
            if chars and chars[-1] == " ":
                continue
            ch = " "
        chars.append(ch)
        index.append(i)
    return "".join(chars), index


def align(text: str, sentence: str, sentence_id: str, post_id: str, fuzzy_threshold: float) -> Alignment:
    """The span of ``sentence`` in ``text`` and the method that found it."""
    start = text.find(sentence) if sentence else -1
    if start >= 0:
        return Alignment((start, start + len(sentence)), "exact")
    norm_text, index = normalize(text)
    norm_sentence, _ = normalize(sentence.strip())
    if norm_sentence.strip():
        found = norm_text.find(norm_sentence.strip())
        if found >= 0:
            return Alignment((index[found], index[found + len(norm_sentence.strip()) - 1] + 1), "normalized")
    position = sentence_index(sentence_id, post_id)
    spans = sentence_spans(text)
    if position is not None and position < len(spans):
        return Alignment(spans[position], "sentence_index")
    if norm_sentence.strip():
        return fuzzy_match(text, norm_sentence.strip(), spans, fuzzy_threshold)
    return Alignment(None, None)


def fuzzy_match(text: str, norm_sentence: str, spans: list[Span], threshold: float) -> Alignment:
    """The run of 1 to ``FUZZY_WINDOW`` consecutive post sentences most similar to the (normalized)
    annotation, if it scores at least ``threshold`` (rapidfuzz ``ratio``, 0-100); the earliest on ties."""
    best: tuple[float, Span] | None = None
    for first in range(len(spans)):
        for last in range(first, min(first + FUZZY_WINDOW, len(spans))):
            candidate = (spans[first][0], spans[last][1])
            score = fuzz.ratio(norm_sentence, normalize(text[candidate[0] : candidate[1]])[0], score_cutoff=threshold)
            if score and (best is None or score > best[0]):
                best = (score, candidate)
    return Alignment(best[1], "fuzzy") if best else Alignment(None, None)


def sentence_index(sentence_id: str, post_id: str) -> int | None:
    """k of a release sentence id ``<post_id>_<k>``; None for any other id."""
    found = re.fullmatch(re.escape(post_id) + r"_([0-9]+)", sentence_id.strip())
    return int(found.group(1)) if found else None
