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


def test_credentials_the_bucket_refuses_are_one_message_naming_where_they_come_from() -> None:
    """A server that checks credentials (moto with authentication on, in its own process: the switch is
    read when moto is imported) answers 403 to unknown keys."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import logging, os
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        from moto.server import ThreadedMotoServer
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        os.environ.update(AWS_ACCESS_KEY_ID="unknown", AWS_SECRET_ACCESS_KEY="unknown",
                          AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://{host}:{port}")
        from redsm5_hpo.config.schema import RemoteConfig
        from redsm5_hpo.remote import BucketError, check_bucket, open_bucket
        try:
            check_bucket(open_bucket(RemoteConfig(uri="s3://team-bucket/p", retry_s=2)))
        except BucketError as e:
            print(e)
        server.stop()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("s3://team-bucket/p: access denied"), result.stdout + result.stderr[-2000:]
    assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE" in result.stdout
