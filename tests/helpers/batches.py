"""Model batches from plain texts, through the real dataset code."""

from __future__ import annotations

from typing import Any

import torch

from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.formats import MultiLabelDataset


def posts_with_first_sentence_as_evidence(texts: list[str]) -> list[Post]:
    posts = []
    for index, text in enumerate(texts):
        end = text.find(".") + 1 or len(text)
        labels = tuple(int(i == index % 9) for i in range(9))
        posts.append(Post(f"p{index}", text, labels, ((0, end),)))
    return posts


def tokenized(encoder: Any, texts: list[str], max_length: int = 64) -> dict[str, torch.Tensor]:
    """One collated batch of ``texts``; the first sentence of each is its gold evidence."""
    dataset = MultiLabelDataset(posts_with_first_sentence_as_evidence(texts), encoder.tokenizer, max_length)
    return dataset.collate([dataset[i] for i in range(len(dataset))])
