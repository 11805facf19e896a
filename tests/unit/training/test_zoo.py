"""Short trainings on the sample: every evidence head learns, the pair format learns and maps back per post."""

from __future__ import annotations

import numpy as np
import pytest

from redsm5_hpo.config import load_config
from redsm5_hpo.config.schema import EVIDENCE_HEADS, with_values
from redsm5_hpo.data.evidence import evidence_chars, token_span
from redsm5_hpo.data.formats import PairDataset, make_dataset
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.evaluation.metrics import constant_baselines, criteria_metrics, evidence_metrics, metric_keys
from redsm5_hpo.evaluation.predict import calibrate, predict, score, score_calibrated
from redsm5_hpo.labels import SYMPTOMS
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.pipeline.builders import build_model, split_datasets
from redsm5_hpo.training.loop import FitOptions, fit
from tests.conftest import CONFIG_DIR


def trained(sample_corpus, *overrides: str):
    config = load_config(
        [
            "model=tiny",
            "train.batch_size=16",
            "train.lr_encoder=1e-3",
            "train.evidence_loss_weight=1.0",
            "data.max_length=128",
            "model.evidence_hidden=32",
            *overrides,
        ],
        CONFIG_DIR,
    )
    runtime = resolve_runtime(config.train)
    model, tokenizer = build_model(config, sample_corpus, runtime)
    train_set, val_set = split_datasets(config, sample_corpus, tokenizer, "train", "validation")
    fit(model, train_set, val_set, config.train, config.seed, runtime, FitOptions(progress=False))
    predictions = predict(model, val_set, config.train, runtime)
    return score_calibrated(predictions, val_set, "val", calibrate(predictions, val_set)), val_set


@pytest.mark.parametrize("head", EVIDENCE_HEADS)
def test_each_evidence_head_learns_evidence(sample_corpus, head: str) -> None:
    metrics, val_set = trained(sample_corpus, f"model.evidence_head={head}", "train.epochs=12")
    gold = [evidence_chars(p.text, p.evidence) for p in val_set.posts]
    everything = [evidence_chars(p.text, [(0, len(p.text))]) for p in val_set.posts]
    all_evidence_f1 = evidence_metrics(everything, gold)["evidence_f1"]
    assert metrics["val_evidence_f1"] > all_evidence_f1 + 0.08, (head, metrics["val_evidence_f1"], all_evidence_f1)


def test_pair_format_learns_criteria_and_reports_per_post(sample_corpus) -> None:
    metrics, val_set = trained(sample_corpus, "data.input_format=pair", "train.epochs=4", "data.max_length=96")
    assert set(metrics) == set(metric_keys("val"))
    labels = np.array([p.labels for p in sample_corpus.splits["train"]])
    val_labels = np.array([p.labels for p in val_set.posts])
    baseline = constant_baselines(labels, val_labels)["all_positive_macro_f1"]
    all_positive = criteria_metrics(val_labels, np.ones(val_labels.shape))["criteria_micro_f1"]
    # micro-F1: the rarest criteria have one or two validation posts, too few for macro-F1 to move in 4 epochs
    assert metrics["val_criteria_micro_f1"] > all_positive + 0.12, (metrics, baseline)
    assert metrics["val_criteria_macro_f1"] > baseline
    gold = [evidence_chars(p.text, p.evidence) for p in val_set.posts]
    everything = [evidence_chars(p.text, [(0, len(p.text))]) for p in val_set.posts]
    assert metrics["val_evidence_f1"] > evidence_metrics(everything, gold)["evidence_f1"] + 0.08


def test_pairs_carry_one_criterion_each_and_map_back_to_posts(sample_corpus) -> None:
    tokenizer = load_encoder("tiny-random", seed=0).tokenizer
    posts = [p for p in sample_corpus.splits["validation"] if sum(p.labels) >= 2][:6]
    dataset = PairDataset(posts, tokenizer, 96)
    assert len(dataset) == 9 * len(posts)
    for index, example in enumerate(dataset.examples):
        post, criterion = posts[index // 9], index % 9
        assert example.criterion == criterion and example.labels == (post.labels[criterion],)
        post_tokens = [i for i, (s, e) in enumerate(example.offsets) if e > s]
        text = tokenizer.decode([example.input_ids[i] for i in post_tokens])
        assert text.replace(" ", "") in post.text.lower().replace(" ", "")
        expected = {token_span(example.offsets, s) for s in post.evidence_by_symptom[criterion]} - {None}
        assert set(example.evidence_tokens) == expected
    probs = np.arange(len(dataset), dtype=float).reshape(-1, 1)
    spans = [[(i, i + 1, 0.1 * (i % 9))] for i in range(len(dataset))]
    per_post, per_post_spans = dataset.to_posts(probs, spans)
    assert per_post.shape == (len(posts), len(SYMPTOMS)) and per_post[1, 2] == 11
    assert [s[0] for s in per_post_spans[1]] == list(range(17, 8, -1))


def test_both_formats_give_the_same_per_post_evaluation(sample_corpus) -> None:
    config = load_config(["model=tiny", "data.max_length=96"], CONFIG_DIR)
    posts = sample_corpus.splits["validation"][:12]
    results = {}
    for input_format in ("multilabel", "pair"):
        config = with_values(config, {"data.input_format": input_format})
        model, tokenizer = build_model(config, sample_corpus)
        dataset = make_dataset(posts, tokenizer, 96, input_format)
        predictions = predict(model, dataset, config.train, resolve_runtime(config.train))
        assert predictions.probs.shape == (12, 9) and len(predictions.evidence_spans) == 12
        results[input_format] = (predictions, score(predictions, dataset, "val"))
    assert results["pair"][0].post_ids == results["multilabel"][0].post_ids
    assert np.array_equal(results["pair"][0].labels, results["multilabel"][0].labels)
    assert set(results["pair"][1]) == set(results["multilabel"][1])
