"""Deterministic, label-stratified, post-level train/validation/test splits."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

SPLITS = ("train", "validation", "test")
PAPER_TEST_SIZE = 0.2
PAPER_RANDOM_STATE = 42


def stratum(labels: Sequence[int], label_frequency: Sequence[int]) -> int:
    """The post's rarest positive label (-1 for symptom-free posts): its stratification key."""
    positives = [i for i, v in enumerate(labels) if v]
    return min(positives, key=lambda i: (label_frequency[i], i)) if positives else -1


def split_post_ids(
    post_ids: Sequence[str], labels: Sequence[Sequence[int]], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Assign every post to exactly one split, stratified by ``stratum``, reproducible from ``seed``."""
    frequency = [sum(col) for col in zip(*labels, strict=True)] if labels else []
    groups: dict[int, list[str]] = defaultdict(list)
    for post_id, post_labels in zip(post_ids, labels, strict=True):
        groups[stratum(post_labels, frequency)].append(post_id)
    rng = random.Random(seed)
    result: dict[str, list[str]] = {name: [] for name in SPLITS}
    for key in sorted(groups):
        members = sorted(groups[key])
        rng.shuffle(members)
        n_test = round(len(members) * test_fraction)
        n_val = round(len(members) * val_fraction)
        result["test"] += members[:n_test]
        result["validation"] += members[n_test : n_test + n_val]
        result["train"] += members[n_test + n_val :]
    return {name: sorted(ids) for name, ids in result.items()}


def paper_split_post_ids(post_ids: Sequence[str], val_fraction: float) -> dict[str, list[str]]:
    """The published baselines' split: scikit-learn's ``train_test_split`` of the posts in source order,
    ``test_size=0.2``, ``random_state=42``, unstratified. Our validation split (they had none) is
    ``val_fraction`` of all posts, carved from their training part by the same call and seed, so their
    test split is untouched."""
    from sklearn.model_selection import train_test_split

    ids = list(post_ids)
    train, test = train_test_split(ids, test_size=PAPER_TEST_SIZE, random_state=PAPER_RANDOM_STATE)
    n_val = max(1, round(len(ids) * val_fraction))
    train, validation = train_test_split(train, test_size=n_val, random_state=PAPER_RANDOM_STATE)
    return {"train": sorted(train), "validation": sorted(validation), "test": sorted(test)}
