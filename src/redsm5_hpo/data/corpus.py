"""Release rows -> one ``Post`` per post with its nine labels and located evidence spans."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from redsm5_hpo.data.errors import DataError
from redsm5_hpo.data.evidence import Span, locate_sentence
from redsm5_hpo.labels import KNOWN_ANNOTATION_LABELS, SPECIAL_CASE, SYMPTOMS

log = logging.getLogger(__name__)


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
    unlocated_evidence: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)


def build_posts(
    posts: list[dict[str, Any]], annotations: list[dict[str, Any]], source: str, split_column: str
) -> tuple[list[Post], CorpusStats]:
    """Join annotations onto posts. Unknown labels or annotations of unknown posts raise ``DataError``."""
    unknown = sorted({str(r["DSM5_symptom"]) for r in annotations} - KNOWN_ANNOTATION_LABELS)
    if unknown:
        raise DataError(
            f"{source}: unknown DSM5_symptom value(s) {unknown}; expected one of {sorted(KNOWN_ANNOTATION_LABELS)}. "
            "Fix the annotations file or map those labels before loading."
        )
    texts = {str(p["post_id"]): str(p["text"]) for p in posts}
    orphans = sorted({str(r["post_id"]) for r in annotations} - texts.keys())
    if orphans:
        raise DataError(
            f"{source}: {len(orphans)} annotation post_id(s) have no post (first: {orphans[:5]}); "
            "the posts and annotations files must come from the same release."
        )
    stats = CorpusStats(posts=len(posts), annotations=len(annotations))
    rows_by_post: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in annotations:
        rows_by_post[str(row["post_id"])].append(row)
    result = []
    for post in posts:
        post_id = str(post["post_id"])
        labels, spans, by_symptom = _labels_and_spans(texts[post_id], rows_by_post[post_id], stats)
        split = post.get(split_column)
        result.append(Post(post_id, texts[post_id], labels, spans, None if split is None else str(split), by_symptom))
    stats.symptom_free_posts = sum(1 for p in result if not any(p.labels))
    stats.label_counts = {s: sum(p.labels[i] for p in result) for i, s in enumerate(SYMPTOMS)}
    if stats.unlocated_evidence:
        log.warning("%s: %d evidence sentence(s) not found in their post text", source, stats.unlocated_evidence)
    return result, stats


def _labels_and_spans(
    text: str, rows: list[dict[str, Any]], stats: CorpusStats
) -> tuple[tuple[int, ...], tuple[Span, ...], tuple[tuple[Span, ...], ...]]:
    labels = [0] * len(SYMPTOMS)
    spans: list[Span] = []
    by_symptom: list[set[Span]] = [set() for _ in SYMPTOMS]
    for row in rows:
        symptom, status = str(row["DSM5_symptom"]), int(row["status"])
        if symptom == SPECIAL_CASE:
            stats.special_case_rows += 1
            continue
        if status != 1:
            stats.negated_rows += 1
            continue
        labels[SYMPTOMS.index(symptom)] = 1
        span = locate_sentence(text, str(row["sentence_text"]))
        if span is None:
            stats.unlocated_evidence += 1
            continue
        by_symptom[SYMPTOMS.index(symptom)].add(span)
        if span not in spans:
            spans.append(span)
    return tuple(labels), tuple(sorted(spans)), tuple(tuple(sorted(s)) for s in by_symptom)
