"""Building a trial's model (encoder, heads, criteria loss) and its datasets, and what the tracker records of
the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redsm5_hpo.config.schema import Config, TrainConfig, training_seed
from redsm5_hpo.data.augment import augment_posts
from redsm5_hpo.data.formats import MultiLabelDataset, Windowing, make_dataset
from redsm5_hpo.data.loading import Corpus
from redsm5_hpo.devices import Runtime
from redsm5_hpo.models.encoder import enable_activation_checkpointing, load_encoder
from redsm5_hpo.models.losses import CriteriaLoss, LossSettings, positive_weights
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.training.seeding import seed_everything


def build_model(
    config: Config, corpus: Corpus | None = None, runtime: Runtime | None = None
) -> tuple[CriteriaEvidenceModel, Any]:
    """A fresh model (encoder + heads + criteria loss) on ``runtime``'s device (the CPU without one) and its
    tokenizer, seeded from the training seed (``config.schema.training_seed``). The class weights of
    weighted BCE come from ``corpus``'s train split (all 1 without a corpus)."""
    seed_everything(training_seed(config))
    encoder = load_encoder(config.model.encoder, config.model.cache_dir, seed=training_seed(config))
    if config.model.gradient_checkpointing:
        enable_activation_checkpointing(encoder.model, config.model.encoder)
    loss = criteria_loss(config.train, corpus)
    pairs = config.data.input_format == "pair"
    model = CriteriaEvidenceModel(encoder.model, config.model, loss, pairs)
    return (model.to(runtime.device) if runtime else model), encoder.tokenizer


def split_datasets(config: Config, corpus: Corpus, tokenizer: Any, *splits: str) -> list[MultiLabelDataset]:
    """The model inputs of ``splits`` in ``config.data.input_format``; the train split gets its
    configured augmentation, no other split ever does. Long posts are read as ``config.data.long_posts``
    says."""
    d, seed = config.data, training_seed(config)
    windows = Windowing(d.stride, d.max_windows) if d.long_posts == "windows" else None
    return [
        make_dataset(
            augment_posts(corpus.splits[s], config.augment, seed) if s == "train" else corpus.splits[s],
            tokenizer,
            d.max_length,
            d.input_format,
            windows,
        )
        for s in splits
    ]


def criteria_loss(cfg: TrainConfig, corpus: Corpus | None) -> CriteriaLoss:
    weights = positive_weights([p.labels for p in corpus.splits["train"]]) if corpus is not None else None
    return CriteriaLoss(LossSettings.of(cfg), weights)


def dataset_input(corpus: Corpus) -> dict[str, Any]:
    """What the tracker records as the runs' dataset input (no text)."""
    hub = not (corpus.source == "sample" or Path(corpus.source).exists())
    digest = corpus.revision.removeprefix("sha256:")[:12]
    return {
        "name": f"redsm5-{corpus.source}" if corpus.source == "sample" else Path(corpus.source).name or corpus.source,
        "digest": digest,
        "source": corpus.source,
        "source_type": "hugging_face" if hub else "local",
        "revision": corpus.revision,
        "splits": {k: len(v) for k, v in corpus.splits.items()},
        "context": "training",
    }


def dataset_tags(corpus: Corpus) -> dict[str, str]:
    return {"dataset.source": corpus.source, "dataset.revision": corpus.revision}
