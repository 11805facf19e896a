"""Files that are either fully written or not there: temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (for a directory: make a rename inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PRIVATE = 0o600
"""Mode of files that hold the resolved configuration with its secrets (read back by ``resume``)."""


def write_json_atomic(path: Path, data: Any, mode: int | None = None) -> Path:
    """``data`` as JSON through a temporary file and a rename; ``mode`` (e.g. ``PRIVATE``) is set before the
    file appears under its name."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True), mode)


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> Path:
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        if mode is not None:
            os.fchmod(f.fileno(), mode)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    fsync_path(path.parent)
    return path
