"""A directory of checkpoints, each written atomically and verified by its manifest.

Layout: ``<dir>/epoch_0003/{model.safetensors, training_state.pt, manifest.json}``.
Protocol: write into ``<dir>/.tmp-epoch_0003-*`` (same filesystem), fsync every file, write the
manifest last, rename, fsync the directory. Checkpoints hold CPU tensors whatever device trained them;
the manifest records that device and the precision (``runtime``). A directory without a valid manifest is never loaded
and is removed when its trial starts or resumes, like the temp directories of interrupted writes.

With a bucket (``remote.uri``, ``mirror.py``) the store's checkpoints are those on the local disk plus those
only in the bucket (evicted from the local cache). Every change to a local checkpoint is made locally and
reaches the bucket with the next ``sync`` (objects, then the manifest); a checkpoint only in the bucket is
changed there directly. Only the trial that owns the store calls ``sync``, ``make_lean`` and ``write_flags``,
from one thread.
Loading never unpickles arbitrary objects: weights are safetensors and the training state is read
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from redsm5_hpo import __version__
from redsm5_hpo.atomic_files import fsync_path, write_json_atomic
from redsm5_hpo.checkpoints.errors import CheckpointError
from redsm5_hpo.checkpoints.hashing import sha256_file
from redsm5_hpo.checkpoints.mirror import CheckpointMirror, in_bucket, mark_in_bucket
from redsm5_hpo.checkpoints.retention import CheckpointRecord, Flags
from redsm5_hpo.errors import first_line
from redsm5_hpo.faults import fault_point
from redsm5_hpo.layout import CHECKPOINTS, TrialDir
from redsm5_hpo.remote import Bucket, BucketUnavailable

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
TRAINING_STATE = "training_state.pt"
TEMP_PREFIX = ".tmp-"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class StoredCheckpoint:
    path: Path
    """Where it is, or would be once downloaded, on the local disk."""
    manifest: dict[str, Any]
    mirror: CheckpointMirror | None = field(default=None, compare=False)
    """The bucket it can be downloaded from when the local copy is missing."""

    @property
    def epoch(self) -> int:
        return int(self.manifest["epoch"])

    @property
    def resumable(self) -> bool:
        return TRAINING_STATE in self.manifest["files"]

    @property
    def size_bytes(self) -> int:
        return sum(int(n) for n in self.manifest["bytes"].values())

    @property
    def record(self) -> CheckpointRecord:
        bytes_ = self.manifest["bytes"]
        return CheckpointRecord(self.epoch, self.score, self.size_bytes, int(bytes_[WEIGHTS]), self.resumable)

    @property
    def score(self) -> float:
        """The objective turned so that higher is better: negated when it is minimized (a loss). A manifest
        without a direction was maximized."""
        objective = float(self.manifest["objective"])
        return -objective if self.manifest.get("direction") == "minimize" else objective


class CheckpointStore:
    def __init__(self, directory: Path, mirror: CheckpointMirror | None = None):
        self.directory = Path(directory)
        self.mirror = mirror
        self._remote: dict[str, dict[str, Any]] | None = None
        """The committed checkpoints in the bucket by name, read once (this store's owner is their only
        writer)."""

    def remove_incomplete(self) -> list[Path]:
        """Delete temp directories of interrupted writes and checkpoint directories without a valid manifest.

        Only the trial that owns the store calls this (at start-up): a reader must not race a writer."""
        removed = []
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.directory.iterdir()):
            if path.is_dir() and (path.name.startswith(TEMP_PREFIX) or read_manifest(path) is None):
                log.warning("removing incomplete checkpoint directory %s (no valid %s)", path, MANIFEST)
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        if self.mirror is not None:
            try:
                self._remote, residue = self.mirror.manifests()
                for name in residue:
                    log.warning("removing incomplete checkpoint %s (no valid %s)", self.mirror.url(name), MANIFEST)
                    self.mirror.delete(name)
            except BucketUnavailable as e:
                log.warning("bucket unreachable, its residue stays for now: %s", first_line(e))
        return removed

    def save(self, model: torch.nn.Module, training_state: dict[str, Any], meta: dict[str, Any]) -> StoredCheckpoint:
        """``write`` the model's current weights (copied to the CPU) and ``training_state``."""
        weights = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        return self.write(weights, training_state, meta)

    def write(
        self, weights: dict[str, torch.Tensor], training_state: dict[str, Any] | None, meta: dict[str, Any]
    ) -> StoredCheckpoint:
        """Write one checkpoint atomically from CPU tensors (weights only, not resumable, without a
        ``training_state``). ``meta`` needs ``epoch`` and ``objective``. On any error (a full disk included)
        the temp directory is removed and nothing else changes."""
        name = f"epoch_{int(meta['epoch']):04d}"
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name}-", dir=self.directory))
        try:
            save_file(weights, temp / WEIGHTS)
            fault_point("checkpoint_write")
            files: tuple[str, ...] = (WEIGHTS,)
            if training_state is not None:
                torch.save(training_state, temp / TRAINING_STATE)
                files = (WEIGHTS, TRAINING_STATE)
            for file in files:
                fsync_path(temp / file)
            manifest = {
                **meta,
                "manifest_version": MANIFEST_VERSION,
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
                "code_version": __version__,
                "files": {f: sha256_file(temp / f) for f in files},
                "bytes": {f: (temp / f).stat().st_size for f in files},
                "flags": dataclasses.asdict(Flags(True, False, True, False)),
            }
            write_json_atomic(temp / MANIFEST, manifest)
            fault_point("checkpoint_commit")
            final = self.directory / name
            if final.exists():
                shutil.rmtree(final)
            os.replace(temp, final)
            fsync_path(self.directory)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return StoredCheckpoint(final, manifest)

    def list(self) -> list[StoredCheckpoint]:
        """Checkpoints with a readable manifest, oldest first (hashes are checked on load): the local ones,
        then those only in the bucket."""
        found = {}
        for path in sorted(self.directory.glob("epoch_*")):
            manifest = read_manifest(path)
            if manifest is None:
                log.warning("ignoring %s: no valid %s", path, MANIFEST)
            else:
                found[path.name] = StoredCheckpoint(path, manifest, self.mirror)
        for name, manifest in self._remote_manifests().items():
            found.setdefault(name, StoredCheckpoint(self.directory / name, manifest, self.mirror))
        return sorted(found.values(), key=lambda c: c.epoch)

    def delete(self, checkpoint: StoredCheckpoint) -> None:
        shutil.rmtree(checkpoint.path, ignore_errors=True)
        name = checkpoint.path.name
        if self.mirror is not None and name in self._remote_manifests():
            try:
                self.mirror.delete(name)
                self._remote_manifests().pop(name, None)
            except BucketUnavailable as e:  # still listed: the next retention deletes it again
                log.warning("could not delete %s yet: %s", self.mirror.url(name), first_line(e))

    def delete_all(self) -> None:
        """Every checkpoint of the store, on the disk and in the bucket."""
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.mirror is not None:
            self.mirror.delete_all()
            self._remote = {}

    def make_lean(self, checkpoint: StoredCheckpoint) -> StoredCheckpoint:
        """Drop the training state; the checkpoint stays loadable as weights, no longer resumable."""
        manifest = {**checkpoint.manifest}
        manifest["files"] = {k: v for k, v in manifest["files"].items() if k != TRAINING_STATE}
        manifest["bytes"] = {k: v for k, v in manifest["bytes"].items() if k != TRAINING_STATE}
        if not checkpoint.path.is_dir():
            return self._change_in_bucket(checkpoint, manifest, drop=TRAINING_STATE)
        write_json_atomic(checkpoint.path / MANIFEST, manifest)  # manifest first: never lists a missing file
        (checkpoint.path / TRAINING_STATE).unlink(missing_ok=True)
        return StoredCheckpoint(checkpoint.path, manifest, self.mirror)

    def write_flags(self, checkpoint: StoredCheckpoint, flags: Flags) -> StoredCheckpoint:
        if checkpoint.manifest.get("flags") == dataclasses.asdict(flags):
            return checkpoint
        manifest = {**checkpoint.manifest, "flags": dataclasses.asdict(flags)}
        if not checkpoint.path.is_dir():
            return self._change_in_bucket(checkpoint, manifest)
        write_json_atomic(checkpoint.path / MANIFEST, manifest)
        return StoredCheckpoint(checkpoint.path, manifest, self.mirror)

    def sync(self) -> builtins.list[StoredCheckpoint]:
        """Upload every local checkpoint the bucket does not hold as it is now (objects first, the manifest
        last); return those still waiting (the bucket is unreachable: the next save tries again)."""
        if self.mirror is None:
            return []
        remote = self._remote_manifests()
        waiting = [
            c for c in self.list() if c.path.is_dir() and not (c.path.name in remote and in_bucket(c.path, c.manifest))
        ]
        for index, checkpoint in enumerate(waiting):
            try:
                self.mirror.upload(checkpoint.path, checkpoint.manifest, remote.get(checkpoint.path.name))
            except (BucketUnavailable, FileNotFoundError) as e:
                log.warning(
                    "bucket: %d checkpoint(s) wait for upload, on the local disk meanwhile (%s)",
                    len(waiting) - index,
                    first_line(e),
                )
                return waiting[index:]
            mark_in_bucket(checkpoint.path, checkpoint.manifest)
            remote[checkpoint.path.name] = checkpoint.manifest
            log.info("checkpoint in the bucket: %s", self.mirror.url(checkpoint.path.name))
        return []

    def _change_in_bucket(
        self, checkpoint: StoredCheckpoint, manifest: dict[str, Any], drop: str | None = None
    ) -> StoredCheckpoint:
        """A checkpoint only in the bucket: its new manifest first, then the object it no longer lists."""
        assert self.mirror is not None
        name = checkpoint.path.name
        try:
            self.mirror.put_manifest(name, manifest)
            if drop:
                self.mirror.remove_file(name, drop)
        except BucketUnavailable as e:  # unchanged in the bucket: the next retention decides again
            log.warning("could not update %s yet: %s", self.mirror.url(name), first_line(e))
            return checkpoint
        self._remote_manifests()[name] = manifest
        return StoredCheckpoint(checkpoint.path, manifest, self.mirror)

    def _remote_manifests(self) -> dict[str, dict[str, Any]]:
        if self.mirror is None:
            return {}
        if self._remote is None:
            try:
                self._remote, _ = self.mirror.manifests()
            except BucketUnavailable as e:
                log.warning("bucket unreachable, listing local checkpoints only: %s", first_line(e))
                return {}
        return self._remote


def verify(checkpoint: StoredCheckpoint) -> None:
    """Raise ``CheckpointError`` if a file is missing or its SHA-256 differs from the manifest. A checkpoint
    only in the bucket is downloaded first."""
    missing = not all((checkpoint.path / f).is_file() for f in checkpoint.manifest.get("files", {}))
    if missing and checkpoint.mirror is not None:
        checkpoint.mirror.download(checkpoint.path.name, checkpoint.manifest, checkpoint.path)
    for file, expected in checkpoint.manifest.get("files", {}).items():
        path = checkpoint.path / file
        if not path.is_file():
            raise CheckpointError(f"{checkpoint.path}: {file} is missing")
        if sha256_file(path) != expected:
            raise CheckpointError(f"{checkpoint.path}: {file} does not match its SHA-256 in {MANIFEST} (corrupted)")


def check_compatible(checkpoint: StoredCheckpoint, architecture: str) -> None:
    saved = checkpoint.manifest.get("architecture")
    if saved != architecture:
        raise CheckpointError(
            f"{checkpoint.path} was written for {saved}, the model is {architecture}; "
            "load it with the model configuration it was trained with (see the trial's config.yaml)."
        )


def load_weights(checkpoint: StoredCheckpoint, model: torch.nn.Module, architecture: str) -> None:
    """Verify and load weights into ``model``, on whatever device the model is (checkpoints hold CPU
    tensors, so one written on a GPU loads on a CPU and the other way round); refuses a checkpoint of
    another architecture."""
    check_compatible(checkpoint, architecture)
    verify(checkpoint)
    fault_point("checkpoint_load")
    model.load_state_dict(load_file(checkpoint.path / WEIGHTS, device="cpu"))


def load_training_state(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    """The optimizer/scheduler/RNG state, loaded without unpickling arbitrary objects."""
    if not checkpoint.resumable:
        raise CheckpointError(f"{checkpoint.path} holds weights only (kept as a best checkpoint); it cannot be resumed")
    state: dict[str, Any] = torch.load(checkpoint.path / TRAINING_STATE, weights_only=True, map_location="cpu")
    return state


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    required = ("epoch", "objective", "files", "bytes")
    return manifest if isinstance(manifest, dict) and all(k in manifest for k in required) else None


def trial_store(trial: TrialDir, bucket: Bucket | None = None) -> CheckpointStore:
    """A trial's checkpoints (``trial_<id>/checkpoints``), mirrored to ``bucket`` under the same relative path."""
    mirror = CheckpointMirror(bucket, f"{trial.path.name}/{CHECKPOINTS}") if bucket is not None else None
    return CheckpointStore(trial.checkpoints, mirror)


@dataclass(frozen=True)
class TrialStores:
    """Where a study's trials keep their checkpoints on this machine: trial directories under ``root``
    (wherever the study recorded them), checkpoints mirrored to ``bucket`` when there is one."""

    root: Path
    bucket: Bucket | None = None

    def trial(self, recorded: str | Path) -> TrialDir:
        return TrialDir.located(self.root, recorded)

    def store(self, trial: TrialDir) -> CheckpointStore:
        return trial_store(trial, self.bucket)
