"""Release rows -> one ``Post`` per post with its nine labels and aligned evidence spans."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from redsm5_hpo.data.alignment import METHODS, align
from redsm5_hpo.data.evidence import Span
from redsm5_hpo.data.rows import clean_release, group_by_post, skipped_summary
from redsm5_hpo.labels import SPECIAL_CASE, SYMPTOMS

log = logging.getLogger(__name__)

UNALIGNED_LISTED = 50
"""Sentence ids of unaligned evidence kept in the stats (the WARNING and the report)."""


@dataclass(frozen=True)
class Post:
    post_id: str
    text: str
    labels: tuple[int, ...]
    """One 0/1 per symptom, in ``SYMPTOMS`` order: 1 if any status-1 sentence names it."""
    evidence: tuple[Span, ...]
    """Character spans of the status-1 symptom sentences (SPECIAL_CASE excluded)."""
    split: str | None = None
    """Predefined split of the source, if it has one."""
    evidence_by_symptom: tuple[tuple[Span, ...], ...] = ()
    """Per symptom (``SYMPTOMS`` order), the spans of its status-1 sentences; empty when not computed."""


@dataclass
class CorpusStats:
    posts: int = 0
    annotations: int = 0
    special_case_rows: int = 0
    negated_rows: int = 0
    symptom_free_posts: int = 0
    evidence_sentences: int = 0
    """Status-1 symptom rows to align to their post."""
    aligned_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METHODS, 0))
    unaligned_ids: list[str] = field(default_factory=list)
    """Sentence ids of the evidence that could not be aligned (their label still counts)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason -> posts or annotation rows left out for it."""
    stripped_ids: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)

    @property
    def aligned(self) -> int:
        return sum(self.aligned_by.values())

    @property
    def unlocated_evidence(self) -> int:
        return self.evidence_sentences - self.aligned

    def quality(self) -> dict[str, Any]:
        """For the report's dataset section."""
        return {
            "evidence_sentences": self.evidence_sentences,
            "aligned": self.aligned,
            "aligned_by": dict(self.aligned_by),
            "unaligned_sentence_ids": self.unaligned_ids[:UNALIGNED_LISTED],
            "skipped": dict(self.skipped),
            "stripped_ids": self.stripped_ids,
        }


def build_posts(
    posts: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    source: str,
    split_column: str,
    fuzzy_threshold: float = 80.0,
) -> tuple[list[Post], CorpusStats]:
    """Clean the rows (``rows.py``), then join the annotations onto their posts, aligning each evidence
    sentence (``alignment.py``). Logs what was skipped and how the evidence was aligned."""
    cleaned = clean_release(posts, annotations, source)
    stats = CorpusStats(posts=len(cleaned.posts), annotations=len(cleaned.annotations))
    stats.skipped = {reason: len(ids) for reason, ids in cleaned.skipped.items()}
    stats.stripped_ids = cleaned.stripped_ids
    for line in skipped_summary(cleaned.skipped):
        log.warning("%s: %s", source, line)
    if cleaned.stripped_ids:
        log.warning("%s: %d id(s) had whitespace around them; stripped", source, cleaned.stripped_ids)
    rows_by_post = group_by_post(cleaned.annotations)
    result = []
    for post in cleaned.posts:
        post_id, text = post["post_id"], post["text"]
        labels, spans, by_symptom = _labels_and_spans(post_id, text, rows_by_post[post_id], stats, fuzzy_threshold)
        split = post.get(split_column)
        result.append(Post(post_id, text, labels, spans, None if split in (None, "") else str(split), by_symptom))
    stats.symptom_free_posts = sum(1 for p in result if not any(p.labels))
    stats.label_counts = {s: sum(p.labels[i] for p in result) for i, s in enumerate(SYMPTOMS)}
    by_method = ", ".join(f"{method} {count}" for method, count in stats.aligned_by.items())
    log.info("%s: aligned %d of %d evidence sentences (%s)", source, stats.aligned, stats.evidence_sentences, by_method)
    if stats.unaligned_ids:
        shown = stats.unaligned_ids[:UNALIGNED_LISTED]
        log.warning(
            "%s: %d evidence sentence(s) not found in their post (their labels still count; their evidence is left "
            "out of training and scoring): %s%s",
            source,
            len(stats.unaligned_ids),
            ", ".join(shown),
            ", ..." if len(stats.unaligned_ids) > len(shown) else "",
        )
    return result, stats


def _labels_and_spans(
    post_id: str, text: str, rows: list[dict[str, Any]], stats: CorpusStats, fuzzy_threshold: float
) -> tuple[tuple[int, ...], tuple[Span, ...], tuple[tuple[Span, ...], ...]]:
    labels = [0] * len(SYMPTOMS)
    spans: list[Span] = []
    by_symptom: list[set[Span]] = [set() for _ in SYMPTOMS]
    for row in rows:
        symptom, status = row["DSM5_symptom"], row["status"]
        if symptom == SPECIAL_CASE:
            stats.special_case_rows += 1
            continue
        if status != 1:
            stats.negated_rows += 1
            continue
        labels[SYMPTOMS.index(symptom)] = 1
        stats.evidence_sentences += 1
        sentence_id = str(row.get("sentence_id") or "")
        found = align(text, str(row.get("sentence_text") or ""), sentence_id, post_id, fuzzy_threshold)
        if found.span is None or found.method is None:
            stats.unaligned_ids.append(sentence_id or f"{post_id} (no sentence_id)")
            continue
        stats.aligned_by[found.method] += 1
        by_symptom[SYMPTOMS.index(symptom)].add(found.span)
        if found.span not in spans:
            spans.append(found.span)
    return tuple(labels), tuple(sorted(spans)), tuple(tuple(sorted(s)) for s in by_symptom)
