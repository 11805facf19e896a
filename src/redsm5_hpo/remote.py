"""The bucket a study mirrors its files to (``remote.uri``): an object store or a mounted share through fsspec.

Keys mirror the experiments directory: the file ``<experiments_dir>/trial_<id>/config.yaml`` is
``<prefix>/trial_<id>/config.yaml`` in the bucket, so the provider's own tools browse it. Credentials come
from the environment or the provider's chain (fsspec hands ``remote.options`` to the client as they are).

Every request is retried with backoff for ``remote.retry_s`` unless the error is permanent (no such bucket,
access denied, a missing object): a throttled request, a 5xx or a reset connection is transient. Once the
retries are spent the request raises ``BucketUnavailable``; the callers decide what waits (uploads) and what
cannot (a download the trial needs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import posixpath
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.core import url_to_fs

from redsm5_hpo.config.schema import Config, RemoteConfig
from redsm5_hpo.errors import first_line

log = logging.getLogger(__name__)

T = TypeVar("T")
PERMANENT = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, ValueError, TypeError)
"""Errors a retry cannot fix."""
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)


class BucketError(RuntimeError):
    """The bucket cannot be used as configured (no such bucket, access denied, a bad endpoint): a user's fix."""


class BucketUnavailable(OSError):
    """A request still failed after ``remote.retry_s`` of retries (an outage): it may work later."""


@dataclass
class Bucket:
    fs: fsspec.AbstractFileSystem
    root: str
    """The prefix inside ``fs`` (``bucket/prefix`` for S3), without a trailing slash."""
    uri: str
    """``remote.uri`` as the user wrote it, for messages."""
    retry_s: float = 30.0

    def key(self, relative: str) -> str:
        return posixpath.join(self.root, relative) if relative else self.root

    def url(self, relative: str = "") -> str:
        return posixpath.join(self.uri.rstrip("/"), relative) if relative else self.uri

    def put_file(self, local: Path, relative: str) -> None:
        self._retry(lambda: self.fs.put_file(str(local), self.key(relative)), f"upload {relative}")

    def put_bytes(self, data: bytes, relative: str) -> None:
        self._retry(lambda: self.fs.pipe_file(self.key(relative), data), f"upload {relative}")

    def read_bytes(self, relative: str) -> bytes | None:
        """The object's bytes; None when there is no such object."""
        try:
            data: bytes = self._retry(lambda: self.fs.cat_file(self.key(relative)), f"read {relative}")
        except FileNotFoundError:
            return None
        return data

    def get_file(self, relative: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self._retry(lambda: self.fs.get_file(self.key(relative), str(local)), f"download {relative}")

    def list_dirs(self, relative: str) -> list[str]:
        """Names of the 'directories' (common prefixes) right under ``relative``; [] when there are none."""
        return [posixpath.basename(p) for p, kind in self._entries(relative) if kind == "directory"]

    def list_files(self, relative: str) -> list[str]:
        """Every object under ``relative``, as paths relative to it (recursive)."""
        base = self.key(relative).rstrip("/") + "/"

        def find() -> list[str]:
            self.fs.invalidate_cache()
            return [str(p) for p in self.fs.find(self.key(relative))]

        try:
            found = self._retry(find, f"list {relative or '/'}")
        except FileNotFoundError:
            return []
        return sorted(p[len(base) :] for p in found if p.startswith(base))

    def list_details(self, relative: str) -> list[tuple[str, int, float]]:
        """Every object under ``relative``: (path relative to it, bytes, last modified as a POSIX time)."""
        base = self.key(relative).rstrip("/") + "/"

        def find() -> dict[str, Any]:
            self.fs.invalidate_cache()
            found: dict[str, Any] = self.fs.find(self.key(relative), detail=True)
            return found

        try:
            found = self._retry(find, f"list {relative or '/'}")
        except FileNotFoundError:
            return []
        return sorted(
            (str(name)[len(base) :], int(info.get("size") or 0), _modified(info))
            for name, info in found.items()
            if str(name).startswith(base)
        )

    def remove(self, relative: str) -> None:
        """Delete ``relative`` and everything under it; nothing to do when it is gone already."""

        def rm() -> None:
            self.fs.invalidate_cache()
            if self.fs.exists(self.key(relative)):
                self.fs.rm(self.key(relative), recursive=True)

        with contextlib.suppress(FileNotFoundError):
            self._retry(rm, f"delete {relative}")

    def _entries(self, relative: str) -> list[tuple[str, str]]:
        def ls() -> list[tuple[str, str]]:
            self.fs.invalidate_cache()
            return [(str(e["name"]).rstrip("/"), str(e["type"])) for e in self.fs.ls(self.key(relative), detail=True)]

        try:
            return self._retry(ls, f"list {relative or '/'}")
        except FileNotFoundError:
            return []

    def _retry(self, operation: Callable[[], T], what: str) -> T:
        deadline = time.monotonic() + self.retry_s
        for attempt in range(1_000_000):
            try:
                return operation()
            except PERMANENT:
                raise
            except Exception as e:
                wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                if time.monotonic() + wait > deadline:
                    raise BucketUnavailable(f"{self.url()}: could not {what}: {first_line(e)}") from e
                log.debug("bucket: %s failed (%s); retrying in %.1fs", what, first_line(e), wait)
                time.sleep(wait)
        raise AssertionError("unreachable")


def _modified(info: dict[str, Any]) -> float:
    """An object's last modification, whichever key the backend reports it under."""
    for key in ("LastModified", "mtime", "last_modified", "updated"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    return 0.0


def open_bucket(remote: RemoteConfig) -> Bucket | None:
    """The bucket of ``remote.uri`` (None when it is unset); a missing fsspec backend is a ``BucketError``
    naming the package to install."""
    if not remote.uri:
        return None
    options: dict[str, Any] = dict(remote.options)
    if remote.uri.startswith(("file:", "/")):
        options.setdefault("auto_mkdir", True)  # a share has directories; an object store has none to make
    try:
        fs, root = url_to_fs(remote.uri, skip_instance_cache=True, **options)
    except ImportError as e:
        raise BucketError(f"remote.uri={remote.uri}: {first_line(e)}") from e
    except (ValueError, TypeError) as e:
        raise BucketError(f"remote.uri={remote.uri} or remote.options: {first_line(e)}") from e
    return Bucket(fs, str(root).rstrip("/"), remote.uri, remote.retry_s)


def check_bucket(bucket: Bucket) -> None:
    """Write, read back and delete a small probe object before any training: a permanent problem (no such
    bucket, access denied, a wrong endpoint) becomes one ``BucketError`` naming the bucket and the fix."""
    probe = f".redsm5-probe-{uuid.uuid4().hex}"
    try:
        bucket.put_bytes(b"probe", probe)
        if bucket.read_bytes(probe) != b"probe":
            raise BucketError(f"{bucket.url()}: an object written could not be read back")
        bucket.remove(probe)
    except FileNotFoundError as e:
        raise BucketError(
            f"{bucket.url()}: the bucket does not exist ({first_line(e)}); create it with the provider's tools "
            "(e.g. `aws s3 mb s3://<bucket>`) or fix remote.uri"
        ) from e
    except PermissionError as e:
        raise BucketError(
            f"{bucket.url()}: access denied ({first_line(e)}); credentials come from the environment or the "
            "provider's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
            "GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*): check they may write under this prefix"
        ) from e
    except BucketUnavailable as e:
        raise BucketError(
            f"{bucket.url()}: unreachable after {bucket.retry_s:.0f}s of retries ({first_line(e)}); check "
            "remote.options.endpoint_url (or AWS_ENDPOINT_URL) and the network"
        ) from e
    except OSError as e:
        raise BucketError(f"{bucket.url()}: {first_line(e)}; check remote.uri, remote.options and credentials") from e


def check_config(config: Config) -> list[str]:
    """``remote.*`` (collected by ``config.validation``): a URL fsspec knows, sane budgets, and no credential
    in the configuration."""
    remote = config.remote
    problems = []
    if remote.uri:
        protocol = remote.uri.split("://", 1)[0] if "://" in remote.uri else ""
        if protocol not in fsspec.available_protocols():
            problems.append(
                f"remote.uri: {remote.uri!r} is not an fsspec URL; use s3://bucket/prefix, gs://..., az://... or "
                "file:///mnt/share/..."
            )
    secret = sorted(k for k in remote.options if _looks_secret(k))
    if secret:
        problems.append(
            f"remote.options: {', '.join(secret)} would keep a credential in the configuration; set it in the "
            "environment instead (e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and remove it here"
        )
    if remote.cache_max_mb < 0:
        problems.append(f"remote.cache_max_mb: must be >= 0, got {remote.cache_max_mb}")
    if remote.flush_timeout_s <= 0 or remote.retry_s <= 0:
        problems.append("remote.flush_timeout_s and remote.retry_s: must be > 0")
    return problems


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("secret", "password", "token", "credential")) or lowered in (
        "key",
        "aws_access_key_id",
        "account_key",
        "sas_token",
    )
