"""Posts -> model inputs. Multi-label format: one example per post, nine targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.evidence import Span, token_labels, truncated_evidence_chars


@dataclass(frozen=True)
class Example:
    post_id: str
    input_ids: list[int]
    evidence_labels: list[int]
    """Per token: 1 if it overlaps an evidence span."""
    offsets: list[Span]
    """Character span of each token in the post text ((0, 0) for special tokens)."""
    labels: tuple[int, ...]


class MultiLabelDataset(Dataset[Example]):
    """Tokenized posts of one split, plus how much evidence truncation cut off."""

    def __init__(self, posts: list[Post], tokenizer: Any, max_length: int):
        encoded = tokenizer(
            [p.text for p in posts], truncation=True, max_length=max_length, return_offsets_mapping=True
        )
        self.posts = posts
        self.examples: list[Example] = []
        total = lost = 0
        for post, ids, offsets in zip(posts, encoded["input_ids"], encoded["offset_mapping"], strict=True):
            offsets = [tuple(o) for o in offsets]
            kept_until = max((end for _, end in offsets), default=0)
            n_total, n_lost = truncated_evidence_chars(post.text, post.evidence, kept_until)
            total, lost = total + n_total, lost + n_lost
            self.examples.append(
                Example(post.post_id, list(ids), token_labels(offsets, post.evidence), offsets, post.labels)
            )
        self.evidence_chars = total
        self.truncated_evidence_chars = lost
        self.pad_token_id = int(tokenizer.pad_token_id or 0)

    @property
    def truncation_loss(self) -> float:
        """Share of non-space evidence characters past ``max_length`` tokens."""
        return self.truncated_evidence_chars / self.evidence_chars if self.evidence_chars else 0.0

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]

    def collate(self, batch: list[Example]) -> dict[str, torch.Tensor]:
        """Pad a batch to its longest post. Returns input_ids/attention_mask/evidence_labels (B, T), labels (B, 9)."""
        width = max(len(e.input_ids) for e in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        evidence = torch.zeros((len(batch), width), dtype=torch.float)
        for row, e in enumerate(batch):
            n = len(e.input_ids)
            input_ids[row, :n] = torch.tensor(e.input_ids)
            attention_mask[row, :n] = 1
            evidence[row, :n] = torch.tensor(e.evidence_labels, dtype=torch.float)
        labels = torch.tensor([e.labels for e in batch], dtype=torch.float)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "evidence_labels": evidence, "labels": labels}
