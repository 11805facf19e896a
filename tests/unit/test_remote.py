"""The bucket's preflight and configuration checks, against a real S3-compatible server (moto)."""

import socket
import time

import pytest

from redsm5_hpo.config.schema import Config, RemoteConfig
from redsm5_hpo.remote import BucketError, BucketUnavailable, check_bucket, check_config, open_bucket
from tests.helpers.s3_server import s3  # noqa: F401 (the fixture)


def test_a_usable_bucket_passes_and_keeps_nothing_of_the_probe(s3) -> None:  # noqa: F811
    bucket = open_bucket(RemoteConfig(uri=s3.uri))
    assert bucket is not None
    check_bucket(bucket)
    assert s3.objects() == []


def test_a_missing_bucket_is_one_message_naming_it_and_the_fix(s3) -> None:  # noqa: F811
    bucket = open_bucket(RemoteConfig(uri="s3://no-such-bucket/exp"))
    assert bucket is not None
    with pytest.raises(BucketError, match=r"s3://no-such-bucket/exp: the bucket does not exist .*aws s3 mb"):
        check_bucket(bucket)


def test_an_unreachable_endpoint_is_retried_then_named(monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    remote = RemoteConfig(uri="s3://b/p", options={"endpoint_url": f"http://127.0.0.1:{port}"}, retry_s=1.5)
    bucket = open_bucket(remote)
    assert bucket is not None
    started = time.monotonic()
    with pytest.raises(BucketError, match=r"s3://b/p: unreachable after 2s of retries .*endpoint_url"):
        check_bucket(bucket)
    assert time.monotonic() - started < 60
    with pytest.raises(BucketUnavailable):
        bucket.put_bytes(b"x", "k")


def test_the_configuration_is_checked_up_front() -> None:
    assert check_config(Config()) == []
    bad = Config(remote=RemoteConfig(uri="bucket/prefix", options={"secret": "s", "endpoint_url": "http://x"}))
    problems = check_config(bad)
    assert any("is not an fsspec URL" in p for p in problems)
    assert any("remote.options: secret would keep a credential" in p for p in problems)
    assert check_config(Config(remote=RemoteConfig(uri="s3://b/p", cache_max_mb=-1))) == [
        "remote.cache_max_mb: must be >= 0, got -1"
    ]


def test_a_missing_fsspec_backend_names_the_package() -> None:
    with pytest.raises(BucketError, match=r"remote\.uri=abfs://c/p"):
        open_bucket(RemoteConfig(uri="abfs://c/p"))
