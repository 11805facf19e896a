"""Shared pieces of the entry points: file names, Optuna attrs, tracker, disk guard and model builders."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

from redsm5_hpo.checkpoints.disk import (
    Thresholds,
)
from redsm5_hpo.checkpoints.monitor import DiskMonitor
from redsm5_hpo.checkpoints.store import TrialStores
from redsm5_hpo.config.schema import Config
from redsm5_hpo.layout import experiments_root
from redsm5_hpo.remote import open_bucket
from redsm5_hpo.tracking.auth import TokenProvider, configure_transport
from redsm5_hpo.tracking.buffered import LOCAL_PREFIX, BufferSettings, JournalingTracker
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker, default_tracking_uri
from redsm5_hpo.tracking.sanitize import mask_secrets

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
        functools.partial(MLflowTracker, uri, tr.experiment_name, artifact_root=artifact_root),
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
