"""Shared pieces of the entry points: file names, Optuna attrs, tracker, disk guard and model builders."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redsm5_hpo.checkpoints.disk import (
    Thresholds,
)
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.checkpoints.store import TrialStores
from redsm5_hpo.config.schema import Config, TrainConfig, training_seed
from redsm5_hpo.data.augment import augment_posts
from redsm5_hpo.data.formats import MultiLabelDataset, Windowing, make_dataset
from redsm5_hpo.data.loading import Corpus
from redsm5_hpo.devices import Runtime
from redsm5_hpo.layout import experiments_root
from redsm5_hpo.models.encoder import enable_activation_checkpointing, load_encoder
from redsm5_hpo.models.losses import CriteriaLoss, positive_weights
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.remote import open_bucket
from redsm5_hpo.tracking.auth import TokenProvider, configure_transport
from redsm5_hpo.tracking.buffered import LOCAL_PREFIX, BufferSettings, JournalingTracker
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker, default_tracking_uri
from redsm5_hpo.tracking.sanitize import mask_secrets
from redsm5_hpo.training.seeding import seed_everything

JOURNAL_DIR = "tracking_journal"


def open_tracker(config: Config) -> JournalingTracker:
    """MLflow behind the outage journal; ``close()`` it when done (it delivers what is left)."""
    tr = config.tracking
    root = experiments_root(config)
    root.mkdir(parents=True, exist_ok=True)
    uri = tr.uri or default_tracking_uri(root)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(tr.request_timeout_s)))
    configure_transport(tr.ca_bundle)
    provider = (
        TokenProvider(tr.token_command, tr.token_lifetime_s, tr.token_refresh_margin_s) if tr.token_command else None
    )
    # a tracking server keeps artifacts where it is told (``--artifacts-destination``: a disk or a bucket);
    # a local store keeps them beside the experiments
    artifact_root = None if uri.startswith(("http://", "https://")) else root / "mlartifacts"
    return JournalingTracker(
        lambda: MLflowTracker(uri, tr.experiment_name, artifact_root=artifact_root),
        Path(tr.journal_dir).resolve() if tr.journal_dir else root / JOURNAL_DIR,
        BufferSettings(
            warn_bytes=int(tr.journal_warn_mb * 2**20),
            flush_timeout_s=tr.flush_timeout_s,
            sync_interval_s=tr.journal_sync_s,
        ),
        provider,
        describe=f"tracking server {mask_secrets(uri)}" if uri.startswith("http") else f"tracking store {uri}",
    )


@contextlib.contextmanager
def system_metrics(config: Config, run_id: str) -> Iterator[None]:
    """``tracking.system_metrics``: MLflow's system-metrics monitor on ``run_id`` while the block runs (not
    for a run that exists only in the journal during an outage)."""
    if not config.tracking.system_metrics or run_id.startswith(LOCAL_PREFIX):
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    uri = config.tracking.uri or default_tracking_uri(experiments_root(config))
    monitor = SystemMetricsMonitor(
        run_id, sampling_interval=config.tracking.system_metrics_interval_s, tracking_uri=uri
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def trial_stores(config: Config, root: Path | None = None) -> TrialStores:
    """The study's trial checkpoints on this machine (under ``root``, default ``experiments_dir``), mirrored
    to ``remote.uri`` when it is set."""
    return TrialStores(root or experiments_root(config), open_bucket(config.remote))


def open_monitor(config: Config) -> DiskMonitor:
    g = config.disk_guard
    return DiskMonitor(
        experiments_root(config),
        Thresholds(g.critical_free_fraction, g.error_free_fraction),
        g.interval_s,
        g.info_interval_s,
    )


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
    return CriteriaLoss(
        cfg.criteria_loss,
        weights,
        gamma=cfg.focal_gamma,
        alpha=cfg.hybrid_alpha,
        hybrid_bce=cfg.hybrid_bce,
        hybrid_focal=cfg.hybrid_focal,
        label_smoothing=cfg.label_smoothing,
        gamma_penalty=cfg.gamma_penalty,
    )


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
