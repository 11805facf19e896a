"""Release rows as read from the files -> rows the corpus can trust, or one error that says what to fix.

Every value arrives as a string (``sources`` reads every column as text). What is left out is named by
reason, with ids and counts, never text (``Cleaned.skipped``):

- ids with whitespace around them are stripped (counted, not skipped);
- a post without an id or without text is skipped, and so are its annotation rows;
- a post row repeated with the same text is kept once; the same id with two different texts stops the
  run (which text do the annotations refer to?);
- an annotation row whose ``status`` is not 0 or 1 is skipped; labels are matched after stripping and
  upper-casing, and an unknown label stops the run, as does an annotation of a post that is not there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from redsm5_hpo.data.errors import DataError
from redsm5_hpo.labels import KNOWN_ANNOTATION_LABELS

TRUE_STATUS = {"1", "1.0", "true"}
FALSE_STATUS = {"0", "0.0", "false"}


@dataclass
class Cleaned:
    posts: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    """With ``status`` as an int (0 or 1) and ``DSM5_symptom`` stripped and upper-cased."""
    skipped: dict[str, list[str]] = field(default_factory=dict)
    """Reason -> ids of the posts or annotation rows left out for it."""
    stripped_ids: int = 0
    """Ids that had whitespace around them."""


def clean_release(posts: Iterable[dict[str, Any]], annotations: Iterable[dict[str, Any]], source: str) -> Cleaned:
    """The posts and annotation rows to build the corpus from; ``DataError`` for what cannot be repaired."""
    cleaned = Cleaned([], [])
    kept_posts = _clean_posts(posts, source, cleaned)
    for number, row in enumerate(annotations, start=1):
        row = {**row, "post_id": _strip_id(row.get("post_id"), cleaned)}
        row["sentence_id"] = _strip_id(row.get("sentence_id"), cleaned)
        row["DSM5_symptom"] = str(row.get("DSM5_symptom") or "").strip().upper()
        label = row["sentence_id"] or f"{row['post_id']} annotation row {number}"
        if row["post_id"] in kept_posts.skipped:
            _skip(cleaned, "annotation row(s) of a skipped post", label)
            continue
        status = _status(row.get("status"))
        if status is None:
            _skip(cleaned, "annotation row(s) whose status is not 0 or 1", label)
            continue
        cleaned.annotations.append({**row, "status": status})
    _check_labels_and_posts(cleaned, kept_posts.ids, source)
    return cleaned


class _PostIds(NamedTuple):
    ids: set[str]
    """Posts kept."""
    skipped: set[str]
    """Posts skipped for want of text (their annotation rows go too)."""


def _clean_posts(rows: Iterable[dict[str, Any]], source: str, cleaned: Cleaned) -> _PostIds:
    texts: dict[str, str] = {}
    skipped: set[str] = set()
    conflicting: set[str] = set()
    for number, row in enumerate(rows, start=1):
        post_id = _strip_id(row.get("post_id"), cleaned)
        text = "" if row.get("text") is None else str(row["text"])
        if not post_id:
            _skip(cleaned, "post(s) without a post_id", f"posts row {number}")
            continue
        if not text.strip():
            _skip(cleaned, "post(s) without text", post_id)
            skipped.add(post_id)
            continue
        if post_id in texts:
            if texts[post_id] != text:
                conflicting.add(post_id)
            else:
                _skip(cleaned, "repeated post row(s) with the same text", post_id)
            continue
        texts[post_id] = text
        cleaned.posts.append({**row, "post_id": post_id, "text": text})
    if conflicting:
        ids = sorted(conflicting)
        raise DataError(
            f"{source}: {len(ids)} post_id(s) appear more than once with different texts (first: {ids[:5]}); the "
            "annotations could refer to either. Give each post its own post_id in the posts file (and in the "
            "annotations that belong to it), or remove the extra rows."
        )
    return _PostIds(set(texts), skipped - set(texts))


def _check_labels_and_posts(cleaned: Cleaned, post_ids: set[str], source: str) -> None:
    unknown = sorted({r["DSM5_symptom"] for r in cleaned.annotations} - KNOWN_ANNOTATION_LABELS)
    if unknown:
        raise DataError(
            f"{source}: unknown DSM5_symptom value(s) {unknown}; expected one of {sorted(KNOWN_ANNOTATION_LABELS)}. "
            "Fix the annotations file or map those labels before loading."
        )
    orphans = sorted({r["post_id"] for r in cleaned.annotations} - post_ids)
    if orphans:
        raise DataError(
            f"{source}: {len(orphans)} annotation post_id(s) have no post (first: {orphans[:5]}); "
            "the posts and annotations files must come from the same release."
        )


def _status(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower() if value is not None else ""
    return 1 if text in TRUE_STATUS else 0 if text in FALSE_STATUS else None


def _strip_id(value: Any, cleaned: Cleaned) -> str:
    text = "" if value is None else str(value)
    if text != text.strip():
        cleaned.stripped_ids += 1
    return text.strip()


def _skip(cleaned: Cleaned, reason: str, label: str) -> None:
    cleaned.skipped.setdefault(reason, []).append(label)


def skipped_summary(skipped: dict[str, list[str]], limit: int = 10) -> list[str]:
    """One line per reason: the count and the first ids."""
    return [
        f"skipped {len(ids)} {reason}: {', '.join(ids[:limit])}{', ...' if len(ids) > limit else ''}"
        for reason, ids in skipped.items()
    ]


def group_by_post(annotations: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in annotations:
        rows[row["post_id"]].append(row)
    return rows
