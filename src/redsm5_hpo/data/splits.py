"""Deterministic, label-stratified, post-level train/validation/test splits."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

SPLITS = ("train", "validation", "test")


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
