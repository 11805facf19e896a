"""Batch order: a pure function of (seed, epoch), the same for any number of DataLoader workers, grouped by
length on request; evaluation sorted by length; workers seeded from the run seed."""

import functools

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.data.batching import MEGABATCH_BATCHES, epoch_batches, length_sorted_batches, seed_worker
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.training.loop import train_loader


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 512), min_size=1, max_size=300),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**31),
    group=st.booleans(),
)
def test_every_example_once_per_epoch_in_batches_of_the_batch_size(lengths, batch_size, seed, group) -> None:
    batches = epoch_batches(lengths, batch_size, seed, 1, group)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert sum(len(b) < batch_size for b in batches) <= 1  # at most one short batch
    assert batches == epoch_batches(lengths, batch_size, seed, 1, group)  # a pure function


def test_the_order_changes_with_the_epoch_and_the_seed() -> None:
    lengths = list(range(100))
    assert epoch_batches(lengths, 8, 13, 1) != epoch_batches(lengths, 8, 13, 2)
    assert epoch_batches(lengths, 8, 13, 1) != epoch_batches(lengths, 8, 14, 1)


def test_grouping_by_length_cuts_padding_and_puts_the_longest_batch_first() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 500, size=2000).tolist()

    def padding(batches):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)

    plain, grouped = epoch_batches(lengths, 8, 13, 1), epoch_batches(lengths, 8, 13, 1, group_by_length=True)
    assert padding(grouped) < 0.2 * padding(plain)
    assert max(lengths) in [lengths[i] for i in grouped[0]]
    # within a mega-batch (after the first batch, which may have moved) lengths fall
    second = grouped[1 : MEGABATCH_BATCHES - 1]
    flat = [lengths[i] for b in second for i in b]
    assert flat == sorted(flat, reverse=True)


def test_evaluation_batches_are_sorted_longest_first() -> None:
    lengths = [5, 9, 1, 9, 3]
    assert length_sorted_batches(lengths, 2) == [[1, 3], [0, 4], [2]]


def test_zero_and_two_workers_give_the_same_batches(sample_corpus) -> None:
    tokenizer = load_encoder("tiny-random").tokenizer
    dataset = MultiLabelDataset(sample_corpus.splits["train"][:40], tokenizer, 64)
    runtime = resolve_runtime(TrainConfig(device="cpu"))
    seen = {}
    for workers in (0, 2):
        loader = train_loader(dataset, TrainConfig(batch_size=8, num_workers=workers), 13, runtime)
        epochs = []
        for epoch in (1, 2):
            loader.batch_sampler.set_epoch(epoch)
            epochs.append([{k: v.clone() for k, v in batch.items()} for batch in loader])
        seen[workers] = epochs
    assert len(seen[0][0]) == 5
    for epoch_0, epoch_2 in zip(seen[0], seen[2], strict=True):
        for a, b in zip(epoch_0, epoch_2, strict=True):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(seen[0][0][0]["input_ids"], seen[0][1][0]["input_ids"])  # epochs differ


class RandomDraws(Dataset):
    """Each item is what the worker's RNGs give: shows how workers are seeded."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[float, float, float]:
        import random

        return random.random(), float(np.random.rand()), float(torch.rand(()))


def _draws(seed: int, parent_seed: int) -> list:
    torch.manual_seed(parent_seed)  # the DataLoader draws its base seed from the parent's RNG
    loader = DataLoader(RandomDraws(), batch_size=2, num_workers=2, worker_init_fn=functools.partial(seed_worker, seed))
    return [tuple(float(x) for x in column) for batch in loader for column in batch]


def test_workers_are_seeded_from_the_run_seed_whatever_the_parent_rng_holds() -> None:
    first, again, other = _draws(13, parent_seed=1), _draws(13, parent_seed=2), _draws(14, parent_seed=1)
    assert first == again and first != other
