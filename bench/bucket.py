"""B11 checkpoints in a bucket (``remote.uri``) on a local S3-compatible server (moto, through s3fs).

- The loop's stall per save with the bucket, as B2 measures it without (the upload runs in the background
  writer after the local commit, so a save waits for it only when the previous epoch's upload is not done).
- Upload throughput of one checkpoint of the measured size vs the local write of the same checkpoint
  (serialize, fsync, hash, commit).
- B1's study with the bucket and ``remote.cache_max_mb=0``: the bytes in the bucket at the end vs keep-all.

The server runs on this machine, so throughput is the client's and the loopback's, not a cloud link's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import torch

from redsm5_hpo.checkpoints.store import trial_store
from redsm5_hpo.config.schema import RemoteConfig
from redsm5_hpo.layout import TrialDir
from redsm5_hpo.remote import open_bucket


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with an empty bucket; yields ``s3://<bucket>/bench``."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}"
    )
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir(bucket)
        yield f"s3://{bucket}/bench"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def bucket_bytes(uri: str) -> int:
    fs, root = fsspec.core.url_to_fs(uri, skip_instance_cache=True)
    return sum(int(fs.size(p)) for p in fs.find(root) if "/checkpoints/" in str(p))


def upload_vs_local(workdir: Path, uri: str, nbytes: int, repetitions: int = 3) -> dict:
    """Seconds and MB/s of the local write and of the upload of a checkpoint of ``nbytes``, median of
    ``repetitions``."""
    bucket = open_bucket(RemoteConfig(uri=uri))
    local, upload = [], []
    for index in range(repetitions):
        store = trial_store(TrialDir.of(workdir / "b11-throughput", f"t{index}"), bucket)
        weights = {"w": torch.randn(max(1, nbytes // 4))}
        started = time.perf_counter()
        saved = store.write(weights, None, {"epoch": 1, "objective": 0.0})
        local.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert store.sync() == []
        upload.append(time.perf_counter() - started)
        size = saved.size_bytes
    mb = size / 2**20
    return {
        "checkpoint_bytes": size,
        "local_write_seconds": statistics.median(local),
        "upload_seconds": statistics.median(upload),
        "local_write_mb_s": mb / statistics.median(local),
        "upload_mb_s": mb / statistics.median(upload),
    }
