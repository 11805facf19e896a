"""Hugging Face token expiry mid-study: check before each trial and checkpoint, pause until valid.

A check returns ``valid``, ``expired`` or ``unknown`` (e.g. offline: loading works from the cache, so
the study goes on). The check is pluggable: ``hub.token_check=command:<cmd>`` runs a command (exit 0 =
valid), which is how tests simulate an expiry without a network.
"""

from __future__ import annotations

import enum
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from redsm5_hpo.config.schema import BUNDLED_ENCODER, TINY_ENCODER, Config

log = logging.getLogger(__name__)

RELOGIN = (
    "log in again with `hf auth login` (it rewrites ~/.cache/huggingface/token, which this process re-reads); "
    "a token passed as HF_TOKEN cannot change in a running process: stop it, export a fresh one and run "
    "`redsm5-hpo resume`"
)


class TokenStatus(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


TokenCheck = Callable[[], TokenStatus]


def command_check(command: str) -> TokenCheck:
    def check() -> TokenStatus:
        done = subprocess.run(command, shell=True, capture_output=True, timeout=60, check=False)
        return TokenStatus.VALID if done.returncode == 0 else TokenStatus.EXPIRED

    return check


def hub_whoami_check() -> TokenCheck:
    """Ask the hub whose token this is: 401 means expired or revoked; no answer means unknown (said once per
    cause, as a WARNING with what to do: the check runs before every trial and checkpoint)."""
    said: set[str] = set()

    def unknown(cause: str, message: str, *args: object) -> TokenStatus:
        if cause not in said:
            said.add(cause)
            log.warning(message, *args)
        return TokenStatus.UNKNOWN

    def check() -> TokenStatus:
        from huggingface_hub import get_token, whoami

        token = get_token()
        if not token:
            return unknown(
                "no token",
                "no Hugging Face token is set, so it cannot expire mid-study; a gated or private model or "
                "dataset needs one (`hf auth login`)",
            )
        try:
            whoami(token=token)
        except Exception as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status == 401:
                return TokenStatus.EXPIRED
            return unknown(
                type(e).__name__,
                "could not check the Hugging Face token (%s: %s); the study goes on with what is cached. If a "
                "download then fails with 401, %s",
                type(e).__name__,
                str(e).splitlines()[0] if str(e) else "no message",
                RELOGIN,
            )
        return TokenStatus.VALID

    return check


def uses_hub(config: Config) -> bool:
    """A hub encoder or dataset: something the token may be needed for."""
    encoder = config.model.encoder
    hub_encoder = encoder not in (TINY_ENCODER, BUNDLED_ENCODER) and not Path(encoder).expanduser().is_dir()
    hub_data = config.data.source != "sample" and not Path(config.data.source).expanduser().is_dir()
    return hub_encoder or hub_data


def check_from_config(config: Config) -> TokenCheck | None:
    setting = config.hub.token_check
    if setting.startswith("command:"):
        return command_check(setting.removeprefix("command:").strip())
    if setting == "auto" and uses_hub(config) and os.environ.get("HF_HUB_OFFLINE") != "1":
        return hub_whoami_check()
    return None


class TokenGate:
    """``wait_until_valid`` returns at once while the token is fine; on expiry it warns, re-checks every
    ``recheck_s`` and returns by itself once the token works again."""

    def __init__(self, check: TokenCheck | None, recheck_s: float, sleep: Callable[[float], None] = time.sleep):
        self.check = check
        self.recheck_s = recheck_s
        self.sleep = sleep
        self.pauses = 0

    def wait_until_valid(self, before: str) -> None:
        """Return while the token is valid; an ``unknown`` state goes on (the check said why, as a WARNING:
        loading may still work from the cache), an expired one pauses here."""
        if self.check is None or self.check() is not TokenStatus.EXPIRED:
            return
        self.pauses += 1
        started = time.monotonic()
        log.warning(
            "the Hugging Face token has expired; the study is paused before %s. To continue, %s. Checking "
            "again every %.0f s; the study resumes by itself.",
            before,
            RELOGIN,
            self.recheck_s,
        )
        while True:
            self.sleep(self.recheck_s)
            if self.check() is not TokenStatus.EXPIRED:
                break
            log.warning("Hugging Face token still expired; paused before %s (%s)", before, RELOGIN)
        log.info("Hugging Face token valid again after %.0f s; continuing with %s", time.monotonic() - started, before)
