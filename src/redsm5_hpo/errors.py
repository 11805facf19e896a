"""How an exception is shown: one line for messages, tags and reports; the whole traceback for JSON logs."""

from __future__ import annotations

import traceback

FILES_ONLY = {"console": False}
"""``extra=`` for a log record the JSON logs keep and the terminal does not show: an error the command line
prints itself, once (``tracking.logs.StdoutHandler`` skips it)."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def traceback_text(error: BaseException) -> str:
    """``error``'s full traceback, chained causes included, as Python prints it."""
    return "".join(traceback.format_exception(error)).rstrip()
