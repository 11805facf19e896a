"""One trial's checkpoints in the bucket: ``<prefix>/trial_<id>/checkpoints/epoch_NNNN/``.

Commit protocol, as on the local disk: the objects go first, the manifest last; a checkpoint in the bucket
without a readable manifest listing objects that are there is residue, never loaded and removed when its
trial starts. Downloads land in a temp directory beside the local copy and are renamed into place; the
manifest's SHA-256 is checked on load as for any local checkpoint, so a corrupted object falls back.

A local checkpoint whose objects and manifest are in the bucket carries ``.in_bucket`` holding its
manifest's digest: a local copy whose marker matches may be evicted; one whose manifest changed since
(slimmed, flags) is uploaded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from redsm5_hpo.faults import fault_point
from redsm5_hpo.remote import Bucket

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
IN_BUCKET = ".in_bucket"
REQUIRED = ("epoch", "objective", "files", "bytes")


def manifest_digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def in_bucket(path: Path, manifest: dict[str, Any]) -> bool:
    """The local copy at ``path`` is in the bucket as it is now."""
    try:
        return (path / IN_BUCKET).read_text(encoding="utf-8") == manifest_digest(manifest)
    except OSError:
        return False


def mark_in_bucket(path: Path, manifest: dict[str, Any]) -> None:
    (path / IN_BUCKET).write_text(manifest_digest(manifest), encoding="utf-8")


class CheckpointMirror:
    """The bucket side of a ``CheckpointStore``; ``prefix`` is the store's directory relative to the
    experiments directory (``trial_<id>/checkpoints``)."""

    def __init__(self, bucket: Bucket, prefix: str):
        self.bucket = bucket
        self.prefix = prefix

    def url(self, name: str = "") -> str:
        return self.bucket.url(f"{self.prefix}/{name}" if name else self.prefix)

    def _key(self, name: str, file: str = "") -> str:
        return f"{self.prefix}/{name}/{file}" if file else f"{self.prefix}/{name}"

    def manifests(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """(committed checkpoints by name, residue: names without a valid manifest or with a listed object
        missing)."""
        objects: dict[str, set[str]] = {}
        for relative in self.bucket.list_files(self.prefix):
            name, _, file = relative.partition("/")
            objects.setdefault(name, set()).add(file)
        committed: dict[str, dict[str, Any]] = {}
        residue = []
        for name, files in sorted(objects.items()):
            manifest = _parse(self.bucket.read_bytes(self._key(name, MANIFEST))) if MANIFEST in files else None
            if manifest is None or not set(manifest["files"]) <= files:
                residue.append(name)
            else:
                committed[name] = manifest
        return committed, residue

    def upload(self, path: Path, manifest: dict[str, Any], in_bucket: dict[str, Any] | None = None) -> None:
        """The objects of the local checkpoint at ``path`` (but those ``in_bucket``, the manifest the bucket
        holds, lists with the same hash), then its manifest (the commit), then remove any object the
        manifest no longer lists (a slimmed checkpoint's training state)."""
        name = path.name
        there = in_bucket["files"] if in_bucket else {}
        for file, digest in manifest["files"].items():
            if there.get(file) != digest:
                self.bucket.put_file(path / file, self._key(name, file))
        fault_point("remote_commit")
        self.put_manifest(name, manifest)
        for stale in set(self.bucket.list_files(self._key(name))) - {*manifest["files"], MANIFEST}:
            self.bucket.remove(self._key(name, stale))

    def put_manifest(self, name: str, manifest: dict[str, Any]) -> None:
        self.bucket.put_bytes(json.dumps(manifest, indent=2).encode(), self._key(name, MANIFEST))

    def remove_file(self, name: str, file: str) -> None:
        self.bucket.remove(self._key(name, file))

    def delete(self, name: str) -> None:
        self.bucket.remove(self._key(name))

    def delete_all(self) -> None:
        self.bucket.remove(self.prefix)

    def download(self, name: str, manifest: dict[str, Any], destination: Path) -> None:
        """Fetch the checkpoint into ``destination`` (renamed into place once complete, marked in the bucket)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=destination.parent))
        try:
            for file in manifest["files"]:
                self.bucket.get_file(self._key(name, file), temp / file)
            (temp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            mark_in_bucket(temp, manifest)
            if destination.exists():
                shutil.rmtree(destination)
            temp.rename(destination)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        log.info("downloaded checkpoint %s to %s", self.url(name), destination)


def _parse(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) and all(k in manifest for k in REQUIRED) else None
