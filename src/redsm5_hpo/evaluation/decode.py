"""Scored candidate spans -> the evidence a head predicts: pure numpy, no torch.

Every evidence head proposes (first token, last token, score) candidates; the prediction is the greedy
best-first set of non-overlapping candidates. Greedy selection in score order means that applying a
threshold afterwards gives exactly the selection made among the candidates above that threshold, so the
decode runs once and threshold calibration only filters.

A post read in overlapping windows is decoded per window, then merged in the post's characters by the
same greedy rule: where two windows propose overlapping spans (the same sentence seen twice), the
higher score wins, so the threshold property holds for the merged post too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from redsm5_hpo.data.evidence import Span

MIN_SCORE = 0.05
"""The lowest threshold on the calibration grid: weaker candidates can never be predicted."""
MAX_CANDIDATES = 1024
"""Best-scoring candidates considered per post: more than a 512-token post has tokens, so the per-token
head never loses one."""

ScoredSpan = tuple[int, int, float]


def greedy_spans(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray) -> list[ScoredSpan]:
    """Non-overlapping (first, last, score) token spans, best first, among candidates scoring >= MIN_SCORE."""
    keep = np.flatnonzero(scores >= MIN_SCORE)
    order = keep[np.argsort(-scores[keep], kind="stable")][:MAX_CANDIDATES]
    taken = np.zeros(int(ends.max()) + 1 if len(ends) else 0, dtype=bool)
    chosen: list[ScoredSpan] = []
    for index in order:
        first, last = int(starts[index]), int(ends[index])
        if taken[first : last + 1].any():
            continue
        taken[first : last + 1] = True
        chosen.append((first, last, float(scores[index])))
    return chosen


def to_char_spans(spans: Sequence[ScoredSpan], offsets: Sequence[Span]) -> list[tuple[int, int, float]]:
    """Token spans -> (start char, end char, score) in the post text."""
    return [(offsets[first][0], offsets[last][1], score) for first, last, score in spans]


def merge_windows(windows: Sequence[Sequence[tuple[int, int, float]]]) -> list[tuple[int, int, float]]:
    """Each window's decoded (start char, end char, score) spans -> the post's: best first, a span kept
    unless it overlaps a better one already kept."""
    candidates = sorted((span for window in windows for span in window), key=lambda span: -span[2])
    chosen: list[tuple[int, int, float]] = []
    for start, end, score in candidates:
        if all(end <= s or start >= e for s, e, _ in chosen):
            chosen.append((start, end, score))
    return chosen
