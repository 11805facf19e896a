"""Which examples form which batch, in which order.

Training batches are a pure function of (seed, epoch): the same for any number of DataLoader workers,
and replayed exactly by a resumed run. Evaluation batches are sorted by length, so little is padded.
With ``windows`` (each unit's window count) a batch is capped at ``batch_size`` windows, not units: units
are taken in order until the next would pass the cap, and a unit with more windows than the cap is a
batch of its own. Without windows, or with one window per unit, batches are ``batch_size`` units.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

MEGABATCH_BATCHES = 50
"""``group_by_length``: batches per mega-batch sorted by length (as the Hugging Face Trainer's sampler)."""


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's order: data order is a pure function of (seed, epoch)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def epoch_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool = False,
    windows: Sequence[int] | None = None,
) -> list[list[int]]:
    """One epoch's batches of example indices: a seeded permutation cut into batches, or with
    ``group_by_length`` the permutation cut into mega-batches of ``MEGABATCH_BATCHES`` batches, each sorted
    longest first, and the batch holding the longest example moved to the front (an out-of-memory error
    shows at the first step, not hours in)."""
    generator = epoch_generator(seed, epoch)
    # one draw before the permutation: the DataLoader of earlier versions drew its worker seed from this
    # generator first, and this keeps their data order
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if group_by_length:
        size = batch_size * MEGABATCH_BATCHES
        order = [
            i for start in range(0, len(order), size) for i in _longest_first(order[start : start + size], lengths)
        ]
    batches = _cut(order, batch_size, windows)
    if group_by_length and batches:
        longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
        batches.insert(0, batches.pop(longest))
    return batches


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, windows: Sequence[int] | None = None
) -> list[list[int]]:
    """Evaluation batches: indices longest first (ties in index order), cut into batches."""
    return _cut(_longest_first(range(len(lengths)), lengths), batch_size, windows)


class EpochBatchSampler(Sampler[list[int]]):
    """``epoch_batches`` as a DataLoader ``batch_sampler``; ``set_epoch`` before each epoch."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        group_by_length: bool = False,
        windows: Sequence[int] | None = None,
    ):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.windows = list(windows) if windows is not None and any(w > 1 for w in windows) else None
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of ``epoch`` (default: the one ``set_epoch`` chose)."""
        epoch = self.epoch if epoch is None else epoch
        return epoch_batches(self.lengths, self.batch_size, self.seed, epoch, self.group_by_length, self.windows)

    def count(self, epoch: int) -> int:
        """Batches in ``epoch``: the same in every epoch unless windows cap the batches."""
        return len(self.batches(epoch)) if self.windows else -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return self.count(self.epoch)


def seed_worker(seed: int, worker_id: int) -> None:
    """DataLoader ``worker_init_fn`` (bind ``seed`` with ``functools.partial``): Python, NumPy and torch in
    each worker are seeded from the run seed and the worker's index, whatever the parent's RNGs hold."""
    worker_seed = (seed * 1_000_003 + 7919 * (worker_id + 1)) % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)
    torch.manual_seed(worker_seed)


def _cut(order: list[int], batch_size: int, windows: Sequence[int] | None) -> list[list[int]]:
    if windows is None:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    used = 0
    for index in order:
        if not batches or used + windows[index] > batch_size:
            batches.append([])
            used = 0
        batches[-1].append(index)
        used += windows[index]
    return batches


def _longest_first(indices: Sequence[int] | range, lengths: Sequence[int]) -> list[int]:
    return sorted(indices, key=lambda i: -lengths[i])
