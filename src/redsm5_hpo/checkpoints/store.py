"""A directory of checkpoints, each written atomically and verified by its manifest.

Layout: ``<dir>/epoch_0003/{model.safetensors, training_state.pt, manifest.json}``.
Protocol: write into ``<dir>/.tmp-epoch_0003-*`` (same filesystem), fsync every file, write the
manifest last, rename, fsync the directory. A directory without a valid manifest is never loaded.
Loading never unpickles arbitrary objects: weights are safetensors and the training state is read
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from redsm5_hpo import __version__
from redsm5_hpo.checkpoints.hashing import sha256_file
from redsm5_hpo.checkpoints.retention import CheckpointRecord

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
TRAINING_STATE = "training_state.pt"
TEMP_PREFIX = ".tmp-"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted or does not fit the model."""


@dataclass(frozen=True)
class StoredCheckpoint:
    path: Path
    manifest: dict[str, Any]

    @property
    def epoch(self) -> int:
        return int(self.manifest["epoch"])

    @property
    def record(self) -> CheckpointRecord:
        return CheckpointRecord(self.epoch, float(self.manifest["objective"]))


class CheckpointStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.remove_temp_dirs()

    def remove_temp_dirs(self) -> None:
        """Delete leftovers of interrupted writes."""
        for leftover in self.directory.glob(TEMP_PREFIX + "*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def save(self, model: torch.nn.Module, training_state: dict[str, Any], meta: dict[str, Any]) -> StoredCheckpoint:
        """Write one checkpoint atomically. ``meta`` needs ``epoch`` and ``objective``."""
        name = f"epoch_{int(meta['epoch']):04d}"
        temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name}-", dir=self.directory))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, temp / WEIGHTS)
        torch.save(training_state, temp / TRAINING_STATE)
        for file in (WEIGHTS, TRAINING_STATE):
            _fsync(temp / file)
        manifest = {
            **meta,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "code_version": __version__,
            "files": {f: sha256_file(temp / f) for f in (WEIGHTS, TRAINING_STATE)},
        }
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        _fsync(temp / MANIFEST)
        final = self.directory / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(temp, final)
        _fsync(self.directory)
        return StoredCheckpoint(final, manifest)

    def list(self) -> list[StoredCheckpoint]:
        """Checkpoints with a readable manifest, oldest first (hashes are checked on load)."""
        found = []
        for path in sorted(self.directory.glob("epoch_*")):
            try:
                found.append(StoredCheckpoint(path, json.loads((path / MANIFEST).read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                log.warning("ignoring %s: no valid %s", path, MANIFEST)
        return found

    def delete(self, checkpoint: StoredCheckpoint) -> None:
        shutil.rmtree(checkpoint.path, ignore_errors=True)


def verify(checkpoint: StoredCheckpoint) -> None:
    """Raise ``CheckpointError`` if a file is missing or its SHA-256 differs from the manifest."""
    for file, expected in checkpoint.manifest.get("files", {}).items():
        path = checkpoint.path / file
        if not path.is_file():
            raise CheckpointError(f"{checkpoint.path}: {file} is missing")
        if sha256_file(path) != expected:
            raise CheckpointError(f"{checkpoint.path}: {file} does not match its SHA-256 in {MANIFEST} (corrupted)")


def load_weights(checkpoint: StoredCheckpoint, model: torch.nn.Module, architecture: str) -> None:
    """Verify and load weights into ``model``; refuses a checkpoint of another architecture."""
    verify(checkpoint)
    saved = checkpoint.manifest.get("architecture")
    if saved != architecture:
        raise CheckpointError(
            f"{checkpoint.path} was written for {saved}, the model is {architecture}; "
            "load it with the model configuration it was trained with (see the trial's config.yaml)."
        )
    model.load_state_dict(load_file(checkpoint.path / WEIGHTS))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
