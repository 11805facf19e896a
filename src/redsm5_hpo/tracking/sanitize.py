"""Mask secrets before anything reaches a log line, an error message or a tracking tag/param.

Masked: Hugging Face tokens (``hf_...``), ``Bearer`` credentials, passwords in URLs
(``scheme://user:password@host``), e-mail addresses, and long API keys (common prefixes such as
``sk-``, ``ghp_``, ``AKIA``, or 32+ characters mixing upper case, lower case and digits). Lower-case
hex ids and hashes (trial uuids, SHA-256) are not secrets and stay readable.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + MASK),
    (
        re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s:/@]*):(?P<password>[^\s@/]+)@"),
        r"\g<scheme>\g<user>:" + MASK + "@",
    ),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}\b"), MASK),
    (re.compile(r"\b(?:sk-|sk_live_|ghp_|gho_|github_pat_|xox[baprs]-|AKIA)[A-Za-z0-9_-]{12,}\b"), MASK),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), MASK),
    (re.compile(r"\b(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{32,}\b"), MASK),
]


def mask_secrets(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def masked(value: Any) -> Any:
    """``value`` (JSON-like: mappings, lists, strings, numbers) with every string masked."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


class SecretMaskingFilter(logging.Filter):
    """Rewrites each record's message (arguments merged in) with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        trace = getattr(record, "traceback", None)
        if isinstance(trace, str):
            record.traceback = mask_secrets(trace)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
