"""Posts -> model inputs: the multi-label format (one example per post, nine targets) and the pair
format (one example per post and criterion, one target)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

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
    post_id: str
    input_ids: list[int]
    evidence_labels: list[int]
    """Per token: 1 if it overlaps an evidence span."""
    offsets: list[Span]
    """Character span of each token in the post text ((0, 0) for special tokens and criterion text)."""
    labels: tuple[int, ...]
    """Nine 0/1 targets (multi-label), or the one target of this post-criterion pair."""
    evidence_tokens: tuple[Span, ...] = ()
    """Gold evidence spans as (first, last) token indices, inclusive; spans cut off by truncation are absent."""
    sentences: tuple[Span, ...] = ()
    """Each kept sentence of the post as (first, last) token indices, inclusive."""
    sentence_labels: tuple[int, ...] = ()
    """Per kept sentence: 1 if at least half of its characters are evidence."""
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
    """Token-level targets of every evidence head for one tokenized example with gold ``evidence``."""
    gold = evidence_chars(post.text, evidence)
    evidence_tokens = tuple(t for t in (token_span(offsets, s) for s in evidence) if t is not None)
    sentences, sentence_labels = [], []
    for sentence in sentence_spans(post.text):
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
Encoded = tuple[Post, list[int], list[Span], tuple[Span, ...], tuple[int, ...], int]


class MultiLabelDataset(Dataset[Example]):
    """Tokenized posts of one split, one example per post with nine targets, plus how much evidence
    truncation cut off."""

    def __init__(self, posts: list[Post], tokenizer: Any, max_length: int):
        self.posts = posts
        self.examples: list[Example] = []
        total = lost = 0
        for post, ids, offsets, evidence, labels, criterion in self._encode(posts, tokenizer, max_length):
            kept_until = max((end for _, end in offsets), default=0)
            n_total, n_lost = truncated_evidence_chars(post.text, evidence, kept_until)
            total, lost = total + n_total, lost + n_lost
            self.examples.append(build_example(post, ids, offsets, evidence, labels, criterion))
        self.evidence_chars = total
        self.truncated_evidence_chars = lost
        self.pad_token_id = int(tokenizer.pad_token_id or 0)

    def _encode(self, posts: list[Post], tokenizer: Any, max_length: int) -> Iterator[Encoded]:
        encoded = tokenizer(
            [p.text for p in posts], truncation=True, max_length=max_length, return_offsets_mapping=True
        )
        for post, ids, offsets in zip(posts, encoded["input_ids"], encoded["offset_mapping"], strict=True):
            yield post, list(ids), [tuple(o) for o in offsets], post.evidence, post.labels, -1

    def to_posts(self, probs: np.ndarray, spans: list[list[ScoredChars]]) -> tuple[np.ndarray, list[list[ScoredChars]]]:
        """Per-example outputs -> per-post (N, 9) probabilities and decoded evidence spans."""
        return probs, spans

    @property
    def truncation_loss(self) -> float:
        """Share of non-space evidence characters past ``max_length`` tokens."""
        return self.truncated_evidence_chars / self.evidence_chars if self.evidence_chars else 0.0

    @property
    def lengths(self) -> list[int]:
        """Tokens per example (what batching by length sorts on)."""
        return [len(e.input_ids) for e in self.examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]

    def collate(self, batch: list[Example]) -> dict[str, torch.Tensor]:
        """Pad a batch to its longest example: see ``collate`` for the fields."""
        return collate(batch, self.pad_token_id)


class PairDataset(MultiLabelDataset):
    """Binary post-criterion pairs (M-06): nine examples per post, each the criterion's short description
    then the post, with one target and that criterion's evidence. ``to_posts`` maps the nine answers back
    to the post, so evaluation is the same as for multi-label."""

    def _encode(self, posts: list[Post], tokenizer: Any, max_length: int) -> Iterator[Encoded]:
        descriptions = [CRITERION_DESCRIPTIONS[s] for s in SYMPTOMS]
        pairs = [(post, c) for post in posts for c in range(len(SYMPTOMS))]
        encoded = tokenizer(
            [descriptions[c] for _, c in pairs],
            [post.text for post, _ in pairs],
            truncation="only_second",
            max_length=max_length,
            return_offsets_mapping=True,
        )
        for index, (post, c) in enumerate(pairs):
            in_post = encoded.sequence_ids(index)
            offsets = [
                tuple(o) if part == 1 else (0, 0)
                for o, part in zip(encoded["offset_mapping"][index], in_post, strict=True)
            ]
            evidence = post.evidence_by_symptom[c] if post.evidence_by_symptom else ()
            yield post, list(encoded["input_ids"][index]), offsets, evidence, (post.labels[c],), c

    def to_posts(self, probs: np.ndarray, spans: list[list[ScoredChars]]) -> tuple[np.ndarray, list[list[ScoredChars]]]:
        n = len(SYMPTOMS)
        merged = [
            sorted((s for c in range(n) for s in spans[i * n + c]), key=lambda s: -s[2]) for i in range(len(self.posts))
        ]
        return probs.reshape(len(self.posts), n), merged


def make_dataset(posts: list[Post], tokenizer: Any, max_length: int, input_format: str) -> MultiLabelDataset:
    """``multilabel``: one example per post; ``pair``: nine post-criterion examples per post."""
    dataset_class = PairDataset if input_format == "pair" else MultiLabelDataset
    return dataset_class(posts, tokenizer, max_length)


def collate(batch: list[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Examples -> tensors. (B, T): input_ids, attention_mask, content_mask (post characters, not special
    tokens), evidence_labels (inside a gold span), start_labels, end_labels, bio_labels (0 O, 1 B, 2 I) and
    sentence_ids (-1 outside every sentence). (B, S, 2): evidence_spans and sentence_bounds as inclusive
    token ranges, -1 where padded; (B, S): sentence_labels, -1 where padded. (B, 9) or, for pairs, (B, 1):
    labels; pairs also get criteria (B,)."""
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
    t["labels"] = torch.tensor([e.labels for e in batch], dtype=torch.float)
    if batch[0].criterion >= 0:
        t["criteria"] = torch.tensor([e.criterion for e in batch], dtype=torch.long)
    return t
