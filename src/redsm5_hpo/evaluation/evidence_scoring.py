"""Evidence scored at three levels, from each post's text and its predicted and gold evidence
characters (the non-space characters the spans cover). Each level counts true positives, false positives
and false negatives over every post, then gives micro precision, recall and F1.

- ``char``: each non-space character of a post is one decision.
- ``sentence``: each sentence of a post (``data.evidence.sentence_spans``) is one decision; a sentence is
  evidence when at least half of its non-space characters are, for the prediction and the gold alike.
- ``span``: a post's evidence is a set of spans, the maximal runs of evidence characters (two pieces with
  only whitespace between them are one run), so a head that proposes tokens, spans or sentences is scored
  the same way. A predicted span matches a gold span when their intersection over union (in non-space
  characters) is at least ``SPAN_IOU``; matching is one to one, highest IoU first. Matched predicted
  spans are true positives, unmatched predicted spans false positives, unmatched gold spans false
  negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redsm5_hpo.data.evidence import Span, evidence_chars, sentence_is_evidence, sentence_spans
from redsm5_hpo.evaluation.metrics import EVIDENCE_LEVELS, precision_recall_f1

SPAN_IOU = 0.5
Counts = tuple[int, int, int]
"""(true positives, false positives, false negatives)."""
Run = tuple[int, int]
"""A run of evidence as [first, last + 1) in the ranks of the post's non-space characters."""


@dataclass(frozen=True)
class GoldEvidence:
    """One post's gold evidence, prepared once to score any number of predictions against it."""

    text: str
    chars: frozenset[int]
    sentences: tuple[Span, ...]
    sentence_is_gold: tuple[bool, ...]
    ranks: dict[int, int]
    """Index of each non-space character -> its rank among them."""
    runs: tuple[Run, ...]


def prepare_gold(text: str, spans: Sequence[Span]) -> GoldEvidence:
    chars = frozenset(evidence_chars(text, spans))
    sentences = tuple(sentence_spans(text))
    ranks = {index: rank for rank, index in enumerate(i for i, c in enumerate(text) if not c.isspace())}
    return GoldEvidence(
        text,
        chars,
        sentences,
        tuple(sentence_is_evidence(text, s, set(chars)) for s in sentences),
        ranks,
        evidence_runs(chars, ranks),
    )


def evidence_runs(chars: frozenset[int] | set[int], ranks: dict[int, int]) -> tuple[Run, ...]:
    """The maximal runs of ``chars`` (non-space character indices) in rank space."""
    runs: list[Run] = []
    for rank in sorted(ranks[i] for i in chars):
        if runs and runs[-1][1] == rank:
            runs[-1] = (runs[-1][0], rank + 1)
        else:
            runs.append((rank, rank + 1))
    return tuple(runs)


def iou(a: Run, b: Run) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / ((a[1] - a[0]) + (b[1] - b[0]) - inter)


def matched_spans(predicted: Sequence[Run], gold: Sequence[Run], min_iou: float = SPAN_IOU) -> int:
    """How many predicted spans match a gold span one to one at IoU >= ``min_iou``, highest IoU first."""
    pairs = sorted(
        ((score, i, j) for i, p in enumerate(predicted) for j, g in enumerate(gold) if (score := iou(p, g)) >= min_iou),
        key=lambda pair: (-pair[0], pair[1], pair[2]),
    )
    used_predicted: set[int] = set()
    used_gold: set[int] = set()
    for _, i, j in pairs:
        if i not in used_predicted and j not in used_gold:
            used_predicted.add(i)
            used_gold.add(j)
    return len(used_predicted)


def level_counts(gold: GoldEvidence, predicted: set[int]) -> dict[str, Counts]:
    """Counts of one post at every level; ``predicted`` holds non-space character indices."""
    chars: Counts = (len(predicted & gold.chars), len(predicted - gold.chars), len(gold.chars - predicted))
    decided = [sentence_is_evidence(gold.text, s, predicted) for s in gold.sentences]
    pairs = list(zip(decided, gold.sentence_is_gold, strict=True))
    sentences: Counts = (
        sum(p and g for p, g in pairs),
        sum(p and not g for p, g in pairs),
        sum(g and not p for p, g in pairs),
    )
    runs = evidence_runs(predicted, gold.ranks)
    matched = matched_spans(runs, gold.runs)
    spans: Counts = (matched, len(runs) - matched, len(gold.runs) - matched)
    return {"char": chars, "sentence": sentences, "span": spans}


def evidence_scores(golds: Sequence[GoldEvidence], predicted: Sequence[set[int]]) -> dict[str, float]:
    """``evidence_<level>_{precision,recall,f1}`` for every level, micro over posts."""
    totals = {level: [0, 0, 0] for level in EVIDENCE_LEVELS}
    for gold, post_predicted in zip(golds, predicted, strict=True):
        for level, counts in level_counts(gold, post_predicted).items():
            totals[level] = [a + b for a, b in zip(totals[level], counts, strict=True)]
    result: dict[str, float] = {}
    for level, (tp, fp, fn) in totals.items():
        precision, recall, f1 = precision_recall_f1(tp, fp, fn)
        result |= {
            f"evidence_{level}_precision": precision,
            f"evidence_{level}_recall": recall,
            f"evidence_{level}_f1": f1,
        }
    return result


def select_level(scores: dict[str, float], level: str) -> dict[str, float]:
    """``evidence_{precision,recall,f1}``: the named level's, the one objectives and calibration use."""
    return {f"evidence_{m}": scores[f"evidence_{level}_{m}"] for m in ("precision", "recall", "f1")}
