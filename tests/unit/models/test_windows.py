"""Long posts read in overlapping windows: targets, pooling, batching, decoding, every head and format."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from redsm5_hpo.config import load_config
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.schema import EVIDENCE_HEADS, TrainConfig
from redsm5_hpo.data.batching import EpochBatchSampler, epoch_batches, length_sorted_batches
from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.evidence import evidence_chars
from redsm5_hpo.data.formats import MultiLabelDataset, Windowing, make_dataset
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.evaluation.decode import merge_windows, to_char_spans
from redsm5_hpo.evaluation.predict import predict, predicted_evidence_chars
from redsm5_hpo.labels import CRITERION_DESCRIPTIONS, SYMPTOMS
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.models.windows import WindowPooling
from redsm5_hpo.pipeline.builders import build_model
from redsm5_hpo.training.loop import FitOptions, LoopState, fit
from tests.conftest import CONFIG_DIR

CPU = resolve_runtime(TrainConfig(device="cpu", precision="fp32"))
FILLER = "we went to the shop and then we walked home by the river in the rain"
EVIDENCE = "I feel empty and sad almost every single day."


def long_post(words: int = 3000, post_id: str = "long") -> Post:
    """``words`` filler words in sentences, then the one evidence sentence (DEPRESSED_MOOD) at the end."""
    filler = FILLER.split()
    sentences = [
        " ".join(filler[i % len(filler)] for i in range(start, start + 15)).capitalize() + "."
        for start in range(0, words, 15)
    ]
    text = " ".join(sentences) + " " + EVIDENCE
    start = len(text) - len(EVIDENCE)
    labels = tuple(int(s == "DEPRESSED_MOOD") for s in SYMPTOMS)
    by_symptom = tuple(((start, len(text)),) if s == "DEPRESSED_MOOD" else () for s in SYMPTOMS)
    return Post(post_id, text, labels, ((start, len(text)),), evidence_by_symptom=by_symptom)


def short_posts(n: int) -> list[Post]:
    posts = []
    for i in range(n):
        text = f"{EVIDENCE} The weather was fine on day {i}."
        labels = tuple(int(s == "DEPRESSED_MOOD") for s in SYMPTOMS)
        span = ((0, len(EVIDENCE)),)
        by_symptom = tuple(span if s == "DEPRESSED_MOOD" else () for s in SYMPTOMS)
        posts.append(Post(f"s{i}", text, labels, span, evidence_by_symptom=by_symptom))
    return posts


@pytest.fixture(scope="module")
def tokenizer():
    return load_encoder("tiny-random").tokenizer


def test_a_3000_word_post_keeps_its_last_sentence_only_with_windows(tokenizer) -> None:
    post = long_post()
    assert len(post.text.split()) > 3000
    cut = MultiLabelDataset([post], tokenizer, 64)
    windowed = MultiLabelDataset([post], tokenizer, 64, Windowing(stride=16))
    assert cut.truncation_loss == 1.0 and cut.window_counts == [1]
    assert not any(cut.examples[0].evidence_labels) and cut.examples[0].evidence_tokens == ()
    assert windowed.truncation_loss == 0.0 and windowed.window_counts[0] > 50
    # training targets: the evidence sentence is labelled in the last window(s) and nowhere else
    labelled = [i for i, e in enumerate(windowed.examples) if any(e.evidence_labels)]
    assert labelled and labelled[-1] == len(windowed.examples) - 1 and labelled[0] > 40
    last = windowed.examples[-1]
    (first, final), *_ = last.evidence_tokens
    assert last.offsets[first][0] <= post.evidence[0][0] and last.offsets[final][1] == len(post.text)
    # decoding: the gold tokens of a window map back to the post's characters; truncation cannot reach them
    chars = merge_windows([to_char_spans([(first, final, 0.9)], last.offsets), [(0, 10, 0.5)]])
    assert evidence_chars(post.text, [c[:2] for c in chars]) >= evidence_chars(post.text, post.evidence)
    assert max(end for _, end in cut.examples[0].offsets) < post.evidence[0][0]


def test_predict_decodes_evidence_from_every_window(tokenizer) -> None:
    """An untrained token head scores every token near 0.5, so at the lowest threshold its evidence covers
    all the characters its model read: the whole post with windows, the first window with truncation."""
    config = load_config(["model=tiny", "data.max_length=64"], CONFIG_DIR)
    model, tokenizer = build_model(config, None)
    post = long_post(600)
    gold = evidence_chars(post.text, post.evidence)
    covered = {}
    for name, windows in (("truncate", None), ("windows", Windowing(16))):
        dataset = MultiLabelDataset([post, *short_posts(3)], tokenizer, 64, windows)
        predictions = predict(model, dataset, config.train, CPU)
        assert predictions.probs.shape == (4, len(SYMPTOMS)) and np.isfinite(predictions.loss)
        covered[name] = predicted_evidence_chars(dataset, predictions.evidence_spans, 0.05)[0]
        spans = sorted(predictions.evidence_spans[0])
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # merged: no overlaps
    assert gold <= covered["windows"] and not gold & covered["truncate"]


def test_max_windows_cuts_and_counts_the_cut_as_truncated(tokenizer) -> None:
    post = long_post(600)
    capped = MultiLabelDataset([post], tokenizer, 64, Windowing(16, max_windows=3))
    assert capped.window_counts == [3] and capped.truncation_loss == 1.0
    assert [e.input_ids[0] for e in capped.examples] == [tokenizer.cls_token_id] * 3


def test_pair_windows_repeat_the_criterion_description(tokenizer) -> None:
    post = long_post(400)
    pairs = make_dataset([post], tokenizer, 64, "pair", Windowing(8))
    assert len(pairs) == len(SYMPTOMS) and pairs.truncation_loss == 0.0
    description = tokenizer(CRITERION_DESCRIPTIONS[SYMPTOMS[0]], add_special_tokens=False)["input_ids"]
    first_unit = pairs[0]
    assert len(first_unit) > 5
    for window in first_unit:
        assert window.input_ids[1 : 1 + len(description)] == description
        assert window.criterion == 0 and all(o == (0, 0) for o in window.offsets[: 1 + len(description)])
    mood, sleep = pairs[SYMPTOMS.index("DEPRESSED_MOOD")], pairs[SYMPTOMS.index("SLEEP_ISSUES")]
    assert any(mood[-1].evidence_labels) and not any(any(w.evidence_labels) for w in sleep)


def test_one_window_per_unit_is_exactly_the_truncated_dataset(tokenizer) -> None:
    posts = short_posts(5)
    cut = MultiLabelDataset(posts, tokenizer, 64)
    windowed = MultiLabelDataset(posts, tokenizer, 64, Windowing(16))
    assert cut.examples == windowed.examples and cut.lengths == windowed.lengths
    a, b = cut.collate([cut[i] for i in range(5)]), windowed.collate([windowed[i] for i in range(5)])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["window_unit"].tolist() == list(range(5))


@pytest.mark.parametrize("mode", ["max", "mean", "attention"])
def test_window_pooling_pools_each_units_windows(mode: str) -> None:
    torch.manual_seed(0)
    pooling = WindowPooling(mode, 4)
    vectors = torch.randn(5, 4, requires_grad=True)
    owner = torch.tensor([0, 0, 0, 1, 2])
    pooled = pooling(vectors, owner, 3)
    assert pooled.shape == (3, 4)
    torch.testing.assert_close(pooled[1:], vectors[3:])  # one window: itself
    if mode == "max":
        torch.testing.assert_close(pooled[0], vectors[:3].max(0).values)
    elif mode == "mean":
        torch.testing.assert_close(pooled[0], vectors[:3].mean(0))
    else:
        assert pooling.scorer is not None
        weights = torch.softmax(pooling.scorer(vectors[:3]).squeeze(-1), 0)
        torch.testing.assert_close(pooled[0], (weights[:, None] * vectors[:3]).sum(0))
    pooled.sum().backward()
    assert vectors.grad is not None and torch.isfinite(vectors.grad).all()
    assert pooling(vectors, torch.arange(5), 5) is vectors  # one window per unit: untouched


def test_batches_are_capped_in_windows() -> None:
    windows = [1, 5, 2, 9, 1, 1, 3, 1]
    lengths = [w * 64 for w in windows]
    for batches in (epoch_batches(lengths, 6, 3, 1, windows=windows), length_sorted_batches(lengths, 6, windows)):
        assert sorted(i for b in batches for i in b) == list(range(8))
        for batch in batches:
            assert len(batch) == 1 or sum(windows[i] for i in batch) <= 6
        assert [3] in batches  # more windows than the cap: a batch of its own
    ones = [1] * 8
    assert epoch_batches(lengths, 3, 3, 1, windows=ones) == epoch_batches(lengths, 3, 3, 1)
    sampler = EpochBatchSampler(lengths, 6, 3, windows=windows)
    assert [sampler.count(e) for e in (1, 2)] == [len(sampler.batches(e)) for e in (1, 2)]


def test_fit_on_windows_steps_once_per_capped_batch(tokenizer) -> None:
    config = load_config(["model=tiny", "data.max_length=64", "train.batch_size=4", "train.epochs=2"], CONFIG_DIR)
    model, tokenizer = build_model(config, None)
    windows = Windowing(16)
    train_set = MultiLabelDataset([long_post(150), *short_posts(6)], tokenizer, 64, windows)
    val_set = MultiLabelDataset([long_post(150, "v"), *short_posts(2)], tokenizer, 64, windows)
    steps: list[int] = []

    class Steps:
        def on_step_end(self, state: LoopState) -> None:
            steps.append(state.global_step)

        def on_epoch_end(self, state: LoopState, result: object) -> None:
            pass

    result = fit(model, train_set, val_set, config.train, config.seed, CPU, FitOptions(hooks=[Steps()], progress=False))
    sampler = EpochBatchSampler(train_set.lengths, 4, config.seed, windows=train_set.window_counts)
    assert train_set.window_counts[0] > 4
    assert len(steps) == sampler.count(1) + sampler.count(2)
    assert len(result.history) == 2 and all(np.isfinite(h["train_loss"]) for h in result.history)


@pytest.mark.parametrize("head", EVIDENCE_HEADS)
@pytest.mark.parametrize("input_format", ["multilabel", "pair"])
def test_every_head_and_format_trains_and_decodes_on_windows(head: str, input_format: str) -> None:
    config = load_config(
        ["model=tiny", "data.max_length=64", f"model.evidence_head={head}", f"data.input_format={input_format}"],
        CONFIG_DIR,
    )
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, window_pooling="attention"))
    model, tokenizer = build_model(config, None)
    dataset = make_dataset([long_post(200), *short_posts(2)], tokenizer, 64, input_format, Windowing(16))
    batch = dataset.collate([dataset[i] for i in range(len(dataset))])
    assert batch["input_ids"].shape[0] > len(dataset) == batch["labels"].shape[0]
    model.train()
    output = model(batch)
    assert output.criteria_logits.shape[0] == len(dataset)
    loss = model.loss(output, batch, 0.5)
    loss.backward()
    assert torch.isfinite(loss) and model.window_pooling.scorer is not None
    assert model.window_pooling.scorer.weight.grad is not None
    predictions = predict(model, dataset, config.train, CPU)
    assert predictions.probs.shape == (3, len(SYMPTOMS))
    text_length = len(dataset.posts[0].text)
    assert all(0 <= s < e <= text_length for s, e, _ in predictions.evidence_spans[0])


def test_a_pair_window_without_room_for_the_stride_is_a_config_error(tokenizer) -> None:
    with pytest.raises(ConfigError, match=r"data\.window_stride=32: in data\.input_format=pair"):
        make_dataset([long_post(200)], tokenizer, 64, "pair", Windowing(32))  # its descriptions take ~40 tokens


def test_window_settings_are_validated() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            ["data.window_stride=80", "data.max_length=128", "data.max_windows=0", "data.long_posts=split"],
            CONFIG_DIR,
        )
    message = str(error.value)
    assert "data.window_stride" in message and "data.max_windows" in message and "data.long_posts" in message
    assert load_config(["model.window_pooling=attention"], CONFIG_DIR).model.window_pooling == "attention"
