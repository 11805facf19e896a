"""Load the first usable checkpoint of a list, falling back past corrupted or incompatible ones."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from redsm5_hpo.checkpoints.errors import CheckpointError
from redsm5_hpo.checkpoints.store import StoredCheckpoint, load_weights
from redsm5_hpo.device_errors import is_device_error

log = logging.getLogger(__name__)


def best_first(checkpoints: Sequence[StoredCheckpoint]) -> list[StoredCheckpoint]:
    """Best objective first (in its direction); among ties, the newest."""
    return sorted(checkpoints, key=lambda c: (-c.score, -c.epoch))


def newest_resumable_first(checkpoints: Sequence[StoredCheckpoint]) -> list[StoredCheckpoint]:
    return sorted((c for c in checkpoints if c.resumable), key=lambda c: -c.epoch)


def load_first_valid(
    candidates: Sequence[StoredCheckpoint], model: torch.nn.Module, architecture: str
) -> StoredCheckpoint:
    """Load the first candidate whose hashes verify and whose architecture matches ``architecture``.

    Every skipped candidate is logged as a WARNING naming it, why, and what is tried next; if none is
    usable, ``CheckpointError`` lists every problem.
    """
    problems: list[str] = []
    for index, checkpoint in enumerate(candidates):
        try:
            load_weights(checkpoint, model, architecture)
        except (CheckpointError, OSError, RuntimeError) as e:
            if is_device_error(e):
                raise  # the GPU failed, not the checkpoint: an earlier one would fail the same way
            problems.append(str(e))
            following = candidates[index + 1].path if index + 1 < len(candidates) else None
            log.warning(
                "checkpoint %s is unusable (%s); %s",
                checkpoint.path,
                e,
                f"falling back to {following}" if following else "no earlier checkpoint left",
            )
            continue
        if problems:
            log.warning("loaded fallback checkpoint %s", checkpoint.path)
        return checkpoint
    raise CheckpointError("no usable checkpoint: " + ("; ".join(problems) or "none saved"))
