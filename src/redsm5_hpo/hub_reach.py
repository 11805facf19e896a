"""Whether the Hugging Face hub can be asked at all, and what a failed request means.

Asked before any download, so that a machine without the hub fails in a second instead of minutes of
retries: ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set, or the endpoint's host not resolving. A
failed request is told apart as ``missing`` (no such repository: 404), ``auth`` (401/403, a gated model),
``transient`` (timeouts, refused or dropped connections, 429 and 5xx: worth a retry) or ``other``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar
from urllib.parse import urlparse

DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
TRUE = {"1", "true", "yes", "on"}
TRANSIENT_ERRORS = {
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "ReadError",
    "RemoteProtocolError",
    "ProxyError",
}
"""The HTTP client's exception names for a request that could pass next time (matched by name: the hub
client's HTTP library is its own business)."""

FailureKind = Literal["missing", "auth", "transient", "other"]
T = TypeVar("T")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def unreachable_reason(resolve: Callable[..., object] = socket.getaddrinfo) -> str | None:
    """Why the hub cannot be asked now (one line), or None when it can."""
    for variable in OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().lower() in TRUE:
            return f"{variable} is set"
    url = urlparse(hub_endpoint())
    host = url.hostname or ""
    try:
        resolve(host, url.port or (443 if url.scheme == "https" else 80))
    except OSError as e:  # socket.gaierror: no DNS, no network
        return f"its host {host} does not resolve ({e.strerror or e})"
    return None


def failure_kind(error: BaseException) -> FailureKind:
    """What a failed hub request means, from the exception and its causes."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    kinds: list[FailureKind] = []
    chain: BaseException | None = error
    while chain is not None:
        status = getattr(getattr(chain, "response", None), "status_code", None)
        if isinstance(chain, GatedRepoError) or status == 403:  # before: a gated repo is a "not found" subclass
            return "auth"
        if isinstance(chain, RepositoryNotFoundError) or status == 404:
            return "missing"
        if status == 401:
            return "auth"
        if (
            (isinstance(status, int) and (status >= 500 or status == 429))
            or isinstance(chain, (TimeoutError, ConnectionError, socket.gaierror))
            or type(chain).__name__ in TRANSIENT_ERRORS
        ):
            kinds.append("transient")
        chain = chain.__cause__ or chain.__context__
    return kinds[0] if kinds else "other"


class RetriesExhausted(Exception):
    """Every attempt failed in a way that could have passed (``transient``)."""

    def __init__(self, attempts: int, last: BaseException) -> None:
        super().__init__(f"{attempts} attempts failed (last: {type(last).__name__}: {last})")
        self.attempts, self.last = attempts, last


def with_retries(
    call: Callable[[], T],
    backoff_s: Sequence[float],
    sleep: Callable[[float], None],
    on_retry: Callable[[int, BaseException], None] = lambda attempt, error: None,
) -> T:
    """``call()`` up to ``len(backoff_s)`` times, waiting ``backoff_s[i]`` after the i-th transient failure
    (``failure_kind``); any other failure is raised at once, and ``RetriesExhausted`` after the last."""
    last: BaseException | None = None
    for attempt, delay in enumerate(backoff_s, start=1):
        try:
            return call()
        except Exception as e:
            if failure_kind(e) != "transient":
                raise
            last = e
            on_retry(attempt, e)
        if attempt < len(backoff_s):
            sleep(delay)
    assert last is not None, "backoff_s must not be empty"
    raise RetriesExhausted(len(backoff_s), last)
