"""One seed for every random number generator a run touches."""

from __future__ import annotations

import random
from typing import Any, Protocol

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


class CudaRng(Protocol):
    """The CUDA generator calls a run's RNG state uses (``torch.cuda`` itself; tests inject another)."""

    def get_rng_state(self, device: torch.device) -> torch.Tensor: ...

    def set_rng_state(self, new_state: torch.Tensor, device: torch.device) -> None: ...


def capture_rng_state(device: torch.device | None = None, cuda: CudaRng = torch.cuda) -> dict[str, Any]:
    """Every RNG's state as tensors and plain values, so it loads with ``torch.load(weights_only=True)``.
    On a CUDA ``device`` also that device's generator (``cuda_device``): the trial's own GPU, whichever
    index it has, and no other."""
    numpy_state: Any = np.random.get_state()
    kind, keys, pos, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda_device"] = cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device | None = None, cuda: CudaRng = torch.cuda) -> None:
    """Inverse of ``capture_rng_state``, onto ``device``: a trial resumed by a worker on another GPU (or
    another index) continues with the generator state its own GPU had. A checkpoint written on a GPU
    resumes on a CPU too, with no CUDA state to restore. Checkpoints of earlier versions hold one CUDA
    state per device (``cuda``); the one of ``device``'s index is used."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if device is None or device.type != "cuda":
        return
    if "cuda_device" in state:
        cuda.set_rng_state(state["cuda_device"], device)
    elif len(state.get("cuda", ())) > (device.index or 0):
        cuda.set_rng_state(state["cuda"][device.index or 0], device)
