"""Credentials for a remote MLflow server: MLflow's own environment variables, plus short-lived tokens.

MLflow reads ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (basic auth),
``MLFLOW_TRACKING_TOKEN`` (bearer) and ``MLFLOW_TRACKING_SERVER_CERT_PATH`` (CA bundle) at every
request. A token-provider command (``tracking.token_command``) prints either a bare token or JSON
``{"token": ..., "expires_in": seconds}``; ``TokenProvider`` runs it again before the token expires and
puts the fresh token into ``MLFLOW_TRACKING_TOKEN``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from redsm5_hpo.tracking.sanitize import mask_secrets

log = logging.getLogger(__name__)

TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
CA_BUNDLE_ENV = "MLFLOW_TRACKING_SERVER_CERT_PATH"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class TokenCommandError(RuntimeError):
    """The token-provider command failed or printed nothing usable."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float


def parse_token_output(output: str, now: float, default_lifetime_s: float) -> Token:
    """A bare token, or JSON with ``token`` and ``expires_in`` (seconds) or ``expires_at`` (epoch seconds)."""
    text = output.strip()
    if not text:
        raise TokenCommandError("the token command printed nothing")
    if text.startswith("{"):
        data = json.loads(text)
        if not data.get("token"):
            raise TokenCommandError('the token command printed JSON without a "token" field')
        if "expires_at" in data:
            return Token(str(data["token"]), float(data["expires_at"]))
        return Token(str(data["token"]), now + float(data.get("expires_in", default_lifetime_s)))
    return Token(text.splitlines()[0], now + default_lifetime_s)


def needs_refresh(token: Token | None, now: float, margin_s: float) -> bool:
    return token is None or now >= token.expires_at - margin_s


class TokenProvider:
    """Keeps ``MLFLOW_TRACKING_TOKEN`` fresh from a command; ``ensure_fresh()`` before each request batch."""

    def __init__(
        self,
        command: str,
        default_lifetime_s: float = 3600.0,
        refresh_margin_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ):
        self.command = command
        self.default_lifetime_s = default_lifetime_s
        self.refresh_margin_s = refresh_margin_s
        self.clock = clock
        self.token: Token | None = None
        self.renewals = 0
        self._lock = threading.Lock()

    def ensure_fresh(self) -> None:
        with self._lock:
            if not needs_refresh(self.token, self.clock(), self.refresh_margin_s):
                return
            try:
                done = subprocess.run(
                    shlex.split(self.command), capture_output=True, text=True, timeout=60, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                raise TokenCommandError(f"tracking.token_command could not run: {mask_secrets(str(e))}") from None
            if done.returncode != 0:
                raise TokenCommandError(
                    f"tracking.token_command exited with {done.returncode}: {mask_secrets(done.stderr.strip()[:300])}"
                )
            self.token = parse_token_output(done.stdout, self.clock(), self.default_lifetime_s)
            self.renewals += 1
            os.environ[TOKEN_ENV] = self.token.value
            log.info("tracking token renewed (valid %.0f s)", self.token.expires_at - self.clock())


def configure_transport(ca_bundle: str | None) -> None:
    """Point MLflow at a custom CA bundle for TLS (``tracking.ca_bundle``), unless the user already did."""
    if ca_bundle:
        os.environ[CA_BUNDLE_ENV] = os.path.abspath(os.path.expanduser(ca_bundle))


def insecure_remote(uri: str) -> bool:
    """True for plain ``http://`` to a host other than this machine (metrics would cross the network
    unencrypted)."""
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname or "") not in LOOPBACK
