"""A copy of the live training state in CPU memory, taken at the end of an epoch so the loop can train
on while a background thread writes it (as ``torch.distributed.checkpoint.async_save`` stages a state
dict in CPU memory before writing it).

The copy goes into buffers that are reused from one save to the next (page-locked when the source lives
on a CUDA device): after the first save of a trial, a snapshot is one memory copy per tensor, with no
allocation and no page faults. The cost is one extra copy of the checkpoint in host memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Snapshot:
    weights: dict[str, torch.Tensor]
    """The model's state dict, as contiguous CPU tensors no other key shares."""
    training_state: dict[str, Any] | None
    """Optimizer, scheduler, scaler and RNG state with every tensor copied to the CPU; None for a
    weights-only checkpoint."""
    nbytes: int
    """Bytes of tensor data: about what the checkpoint takes on disk."""


class SnapshotBuffers:
    """CPU tensors reused across snapshots, one per position in the state (``weights.<key>``,
    ``state.optimizer.state.3.exp_avg``...)."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def snapshot(self, weights: Mapping[str, torch.Tensor], training_state: Mapping[str, Any] | None) -> Snapshot:
        """Copy both into the buffers; the live state may change as soon as this returns. A buffer must not
        be copied into again before the writer of the previous snapshot is done (the manager waits)."""
        used: list[torch.Tensor] = []
        sources: set[torch.device] = set()
        copied_weights = {k: self._copy(v, f"weights.{k}", used, sources) for k, v in weights.items()}
        copied_state = None if training_state is None else self._tree(dict(training_state), "state", used, sources)
        for device in devices_to_wait_for(sources):
            torch.cuda.synchronize(device)  # the copies from that GPU ran asynchronously; the buffers are read after
        return Snapshot(copied_weights, copied_state, sum(b.numel() * b.element_size() for b in used))

    def _tree(self, node: Any, path: str, used: list[torch.Tensor], sources: set[torch.device]) -> Any:
        if isinstance(node, torch.Tensor):
            return self._copy(node, path, used, sources)
        if isinstance(node, Mapping):
            return {k: self._tree(v, f"{path}.{k}", used, sources) for k, v in node.items()}
        if isinstance(node, list):
            return [self._tree(v, f"{path}.{i}", used, sources) for i, v in enumerate(node)]
        if isinstance(node, tuple):
            return tuple(self._tree(v, f"{path}.{i}", used, sources) for i, v in enumerate(node))
        return node  # numbers, strings, None: immutable

    def _copy(
        self, tensor: torch.Tensor, path: str, used: list[torch.Tensor], sources: set[torch.device]
    ) -> torch.Tensor:
        source = tensor.detach()
        buffer = self._buffers.get(path)
        if buffer is None or buffer.shape != source.shape or buffer.dtype != source.dtype:
            buffer = torch.empty(source.shape, dtype=source.dtype, pin_memory=source.is_cuda)
            self._buffers[path] = buffer
        buffer.copy_(source, non_blocking=source.is_cuda)
        used.append(buffer)
        sources.add(source.device)
        return buffer


def devices_to_wait_for(sources: set[torch.device]) -> list[torch.device]:
    """The CUDA devices whose copies into page-locked buffers ran asynchronously: each is synchronized on
    its own (``torch.cuda.synchronize()`` alone waits for the current device only, not a ``cuda:1``)."""
    return sorted((d for d in sources if d.type == "cuda"), key=lambda d: d.index or 0)
