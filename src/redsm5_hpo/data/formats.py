"""Posts -> model inputs: the multi-label format (one unit per post, nine targets) and the pair format
(one unit per post and criterion, one target).

A unit is read as one window of ``max_length`` tokens, or, for a longer post with ``data.long_posts=
windows``, as overlapping windows (the tokenizer's overflow with ``stride``) whose targets are each
window's part of the post. The model pools a unit's windows into one set of criteria logits, and
evaluation merges their evidence back into the post's characters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.evidence import (
    Span,
    evidence_chars,
    sentence_is_evidence,
    sentence_spans,
    token_labels,
    token_span,
    truncated_evidence_chars,
)
from redsm5_hpo.labels import CRITERION_DESCRIPTIONS, SYMPTOMS


@dataclass(frozen=True)
class Example:
    """One window of a unit: the tokens the encoder reads in one row, with their targets."""

    post_id: str
    input_ids: list[int]
    evidence_labels: list[int]
    """Per token: 1 if it overlaps an evidence span."""
    offsets: list[Span]
    """Character span of each token in the post text ((0, 0) for special tokens and criterion text)."""
    labels: tuple[int, ...]
    """Nine 0/1 targets (multi-label), or the one target of this post-criterion pair."""
    evidence_tokens: tuple[Span, ...] = ()
    """Gold evidence spans as (first, last) token indices, inclusive; the part of a span inside this window,
    none for a span outside it."""
    sentences: tuple[Span, ...] = ()
    """Each sentence of the post this window holds (a part of), as (first, last) token indices, inclusive."""
    sentence_labels: tuple[int, ...] = ()
    """Per sentence in ``sentences``: 1 if at least half of its characters (in the whole post) are evidence."""
    criterion: int = -1
    """Pair format: the criterion (index into ``SYMPTOMS``) this example asks about; -1 for multi-label."""


def build_example(
    post: Post,
    input_ids: list[int],
    offsets: list[Span],
    evidence: tuple[Span, ...],
    labels: tuple[int, ...],
    criterion: int = -1,
) -> Example:
    """Token-level targets of every evidence head for one tokenized window with gold ``evidence``."""
    gold = evidence_chars(post.text, evidence)
    evidence_tokens = tuple(t for t in (token_span(offsets, s) for s in evidence) if t is not None)
    content = [(start, end) for start, end in offsets if end > start]
    first_char, last_char = (content[0][0], content[-1][1]) if content else (0, 0)
    sentences, sentence_labels = [], []
    for sentence in sentence_spans(post.text):
        if sentence[1] <= first_char or sentence[0] >= last_char:
            continue  # outside this window
        tokens = token_span(offsets, sentence)
        if tokens is not None:
            sentences.append(tokens)
            sentence_labels.append(int(sentence_is_evidence(post.text, sentence, gold)))
    return Example(
        post.post_id,
        input_ids,
        token_labels(offsets, evidence),
        offsets,
        labels,
        evidence_tokens,
        tuple(sentences),
        tuple(sentence_labels),
        criterion,
    )


ScoredChars = tuple[int, int, float]
"""A decoded evidence span: (start char, end char, score)."""
Unit = tuple[Example, ...]
"""What one label row is read from: the windows of a post (multi-label) or of a post-criterion pair, in
text order; one window when the post fits in ``max_length`` tokens or is truncated."""
Encoded = tuple[Post, list[tuple[list[int], list[Span]]], tuple[Span, ...], tuple[int, ...], int]
"""A unit before its targets: post, its windows as (input ids, offsets), evidence, labels, criterion."""


@dataclass(frozen=True)
class Windowing:
    """How a post longer than ``max_length`` tokens is read: windows that each repeat ``stride`` tokens of
    the one before, at most ``max_windows`` per post (None = all)."""

    stride: int = 32
    max_windows: int | None = None


class MultiLabelDataset(Dataset[Unit]):
    """Tokenized posts of one split, one unit per post with nine targets, plus how much evidence
    truncation cut off. ``windows=None`` truncates each post to ``max_length`` tokens; a ``Windowing``
    splits it into overlapping windows instead."""

    def __init__(self, posts: list[Post], tokenizer: Any, max_length: int, windows: Windowing | None = None):
        self.posts = posts
        self.examples: list[Example] = []
        """Every window of every unit, units in order."""
        self.units: list[range] = []
        """Per unit, its windows' indices into ``examples``."""
        total = lost = 0
        for post, encoded, evidence, labels, criterion in self._encode(posts, tokenizer, max_length, windows):
            kept_until = max((end for _, offsets in encoded for _, end in offsets), default=0)
            n_total, n_lost = truncated_evidence_chars(post.text, evidence, kept_until)
            total, lost = total + n_total, lost + n_lost
            first = len(self.examples)
            for ids, offsets in encoded:
                self.examples.append(build_example(post, ids, offsets, evidence, labels, criterion))
            self.units.append(range(first, len(self.examples)))
        self.evidence_chars = total
        self.truncated_evidence_chars = lost
        self.pad_token_id = int(tokenizer.pad_token_id or 0)

    def _encode(
        self, posts: list[Post], tokenizer: Any, max_length: int, windows: Windowing | None
    ) -> Iterator[Encoded]:
        encoded = tokenizer([p.text for p in posts], **_tokenizer_options(max_length, windows))
        for post, rows in zip(posts, _window_rows(encoded, len(posts), windows), strict=True):
            yield post, _windows_of(encoded, rows), post.evidence, post.labels, -1

    def to_posts(self, probs: np.ndarray, spans: list[list[ScoredChars]]) -> tuple[np.ndarray, list[list[ScoredChars]]]:
        """Per-unit outputs -> per-post (N, 9) probabilities and decoded evidence spans."""
        return probs, spans

    @property
    def truncation_loss(self) -> float:
        """Share of non-space evidence characters no kept token covers (past ``max_length`` tokens, or past
        the last of ``max_windows`` windows)."""
        return self.truncated_evidence_chars / self.evidence_chars if self.evidence_chars else 0.0

    @property
    def lengths(self) -> list[int]:
        """Tokens per unit, over its windows (what batching by length sorts on)."""
        return [sum(len(self.examples[w].input_ids) for w in unit) for unit in self.units]

    @property
    def window_counts(self) -> list[int]:
        """Windows per unit (what caps a batch)."""
        return [len(unit) for unit in self.units]

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, index: int) -> Unit:
        return tuple(self.examples[w] for w in self.units[index])

    def collate(self, batch: list[Unit]) -> dict[str, torch.Tensor]:
        """Pad a batch to its longest window: see ``collate`` for the fields."""
        return collate(batch, self.pad_token_id)


class PairDataset(MultiLabelDataset):
    """Binary post-criterion pairs: nine units per post, each the criterion's short description
    then the post (repeated in each window of a long post), with one target and that criterion's evidence.
    ``to_posts`` maps the nine answers back to the post, so evaluation is the same as for multi-label."""

    def _encode(
        self, posts: list[Post], tokenizer: Any, max_length: int, windows: Windowing | None
    ) -> Iterator[Encoded]:
        descriptions = [CRITERION_DESCRIPTIONS[s] for s in SYMPTOMS]
        if windows is not None:
            _check_pair_room(tokenizer, descriptions, max_length, windows.stride)
        pairs = [(post, c) for post in posts for c in range(len(SYMPTOMS))]
        options = _tokenizer_options(max_length, windows) | {"truncation": "only_second"}
        encoded = tokenizer([descriptions[c] for _, c in pairs], [post.text for post, _ in pairs], **options)
        for (post, c), rows in zip(pairs, _window_rows(encoded, len(pairs), windows), strict=True):
            evidence = post.evidence_by_symptom[c] if post.evidence_by_symptom else ()
            yield post, _windows_of(encoded, rows, part=1), evidence, (post.labels[c],), c

    def to_posts(self, probs: np.ndarray, spans: list[list[ScoredChars]]) -> tuple[np.ndarray, list[list[ScoredChars]]]:
        n = len(SYMPTOMS)
        merged = [
            sorted((s for c in range(n) for s in spans[i * n + c]), key=lambda s: -s[2]) for i in range(len(self.posts))
        ]
        return probs.reshape(len(self.posts), n), merged


def make_dataset(
    posts: list[Post], tokenizer: Any, max_length: int, input_format: str, windows: Windowing | None = None
) -> MultiLabelDataset:
    """``multilabel``: one unit per post; ``pair``: nine post-criterion units per post. ``windows``: see
    ``MultiLabelDataset``."""
    dataset_class = PairDataset if input_format == "pair" else MultiLabelDataset
    return dataset_class(posts, tokenizer, max_length, windows)


def _check_pair_room(tokenizer: Any, descriptions: list[str], max_length: int, stride: int) -> None:
    """A window of a pair holds the longest description, the special tokens and more post tokens than the
    stride repeats; otherwise the tokenizer cannot make windows (it panics), so say what to change."""
    longest = max(len(tokenizer(d, add_special_tokens=False)["input_ids"]) for d in descriptions)
    room = max_length - longest - tokenizer.num_special_tokens_to_add(pair=True)
    if stride >= room:
        raise ConfigError(
            [
                f"data.window_stride={stride}: in data.input_format=pair a window of data.max_length={max_length} "
                f"tokens holds {room} post tokens after the longest criterion description ({longest} tokens); "
                f"use a window_stride below {room} or a larger max_length"
            ]
        )


def _tokenizer_options(max_length: int, windows: Windowing | None) -> dict[str, Any]:
    options: dict[str, Any] = {"truncation": True, "max_length": max_length, "return_offsets_mapping": True}
    if windows is not None:
        options |= {"return_overflowing_tokens": True, "stride": windows.stride}
    return options


def _window_rows(encoded: Any, texts: int, windows: Windowing | None) -> list[list[int]]:
    """Per input text, the rows of ``encoded`` holding its windows, in text order, at most ``max_windows``."""
    if windows is None:
        return [[index] for index in range(texts)]
    rows: list[list[int]] = [[] for _ in range(texts)]
    for row, owner in enumerate(encoded["overflow_to_sample_mapping"]):
        if windows.max_windows is None or len(rows[owner]) < windows.max_windows:
            rows[owner].append(row)
    return rows


def _windows_of(encoded: Any, rows: list[int], part: int | None = None) -> list[tuple[list[int], list[Span]]]:
    """(input ids, offsets) of each row. ``part``: only the offsets of that sequence of a pair are post
    characters; the others become (0, 0)."""
    result = []
    for row in rows:
        offsets = [tuple(o) for o in encoded["offset_mapping"][row]]
        if part is not None:
            offsets = [o if seq == part else (0, 0) for o, seq in zip(offsets, encoded.sequence_ids(row), strict=True)]
        result.append((list(encoded["input_ids"][row]), offsets))
    return result


def collate(units: Sequence[Unit], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Units -> tensors, one row per window (W windows of B units). (W, T): input_ids, attention_mask,
    content_mask (post characters, not special tokens), evidence_labels (inside a gold span), start_labels,
    end_labels, bio_labels (0 O, 1 B, 2 I) and sentence_ids (-1 outside every sentence). (W, S, 2):
    evidence_spans and sentence_bounds as inclusive token ranges, -1 where padded; (W, S): sentence_labels,
    -1 where padded; (W,): window_unit, the unit each window belongs to. Per unit: (B, 9) or, for pairs,
    (B, 1) labels; pairs also get criteria (B,)."""
    batch = [window for unit in units for window in unit]
    width = max(len(e.input_ids) for e in batch)
    rows = len(batch)
    spans_width = max(1, max(len(e.evidence_tokens) for e in batch))
    sentences_width = max(1, max(len(e.sentences) for e in batch))
    t = {
        "input_ids": torch.full((rows, width), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((rows, width), dtype=torch.long),
        "content_mask": torch.zeros((rows, width), dtype=torch.bool),
        "evidence_labels": torch.zeros((rows, width)),
        "start_labels": torch.zeros((rows, width)),
        "end_labels": torch.zeros((rows, width)),
        "bio_labels": torch.zeros((rows, width), dtype=torch.long),
        "sentence_ids": torch.full((rows, width), -1, dtype=torch.long),
        "evidence_spans": torch.full((rows, spans_width, 2), -1, dtype=torch.long),
        "sentence_bounds": torch.full((rows, sentences_width, 2), -1, dtype=torch.long),
        "sentence_labels": torch.full((rows, sentences_width), -1.0),
    }
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        t["input_ids"][row, :n] = torch.tensor(e.input_ids)
        t["attention_mask"][row, :n] = 1
        t["content_mask"][row, :n] = torch.tensor([end > start for start, end in e.offsets])
        t["evidence_labels"][row, :n] = torch.tensor(e.evidence_labels, dtype=torch.float)
        for index, (first, last) in enumerate(e.evidence_tokens):
            t["evidence_spans"][row, index] = torch.tensor([first, last])
            t["start_labels"][row, first] = 1.0
            t["end_labels"][row, last] = 1.0
            t["bio_labels"][row, first : last + 1] = 2
        for first, _ in e.evidence_tokens:
            t["bio_labels"][row, first] = 1
        for index, ((first, last), label) in enumerate(zip(e.sentences, e.sentence_labels, strict=True)):
            t["sentence_bounds"][row, index] = torch.tensor([first, last])
            t["sentence_labels"][row, index] = float(label)
            t["sentence_ids"][row, first : last + 1] = index
    t["window_unit"] = torch.tensor([u for u, unit in enumerate(units) for _ in unit], dtype=torch.long)
    t["labels"] = torch.tensor([unit[0].labels for unit in units], dtype=torch.float)
    if batch[0].criterion >= 0:
        t["criteria"] = torch.tensor([unit[0].criterion for unit in units], dtype=torch.long)
    return t
