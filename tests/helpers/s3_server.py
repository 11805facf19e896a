"""An S3-compatible server on 127.0.0.1 (moto's ``ThreadedMotoServer``, the one s3fs's own tests use), reached
by the real s3fs client, in this process and in every CLI process a test starts (``AWS_ENDPOINT_URL``)."""

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import pytest
from moto.server import ThreadedMotoServer

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3:
    server: ThreadedMotoServer
    port: int
    bucket: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/exp"

    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem("s3", endpoint_url=self.endpoint, skip_instance_cache=True)

    def objects(self) -> list[str]:
        """Every object under the study prefix, relative to it."""
        fs = self.fs()
        prefix = f"{self.bucket}/exp/"
        return sorted(str(p).removeprefix(prefix) for p in fs.find(prefix))

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        """Again on the same port (moto keeps the objects in this process)."""
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3(monkeypatch) -> Iterator[S3]:
    """A running server with a fresh, empty bucket; the environment points every client at it."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    found = S3(server, port, f"bkt-{uuid.uuid4().hex[:12]}")
    found.fs().mkdir(found.bucket)
    try:
        yield found
    finally:
        found.server.stop()
        os.environ.pop("AWS_ENDPOINT_URL", None)
