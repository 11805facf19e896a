"""Where and in which precision a run computes: the one place that resolves ``train.device`` and
``train.precision`` into a ``Runtime`` (device, autocast context, gradient scaler, batch transfer) and sets
the determinism switches. Every other module receives the ``Runtime``.

Resolution happens when a command starts, before data or models are touched: a device this machine lacks
is a ``DeviceError`` naming the devices found and the fix. A saved configuration is never checked against
the machine that reads it, so a study trained on a GPU can still be reported or evaluated on a laptop.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.schema import TrainConfig

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CUBLAS_WORKSPACE_CONFIG = ":4096:8"
"""cuBLAS needs a fixed workspace to be deterministic (CUDA >= 10.2)."""


class DeviceError(ConfigError):
    """The configured device or precision is not available on this machine."""

    def __init__(self, problem: str):
        super().__init__([problem])


@dataclass(frozen=True)
class Runtime:
    """A resolved device and precision."""

    device: torch.device
    precision: str
    """``fp32``, ``bf16`` or ``fp16`` (never ``auto``)."""
    name: str
    """What the device is: ``NVIDIA H200``, ``cpu (AMD EPYC, AVX512)``, ``Apple MPS``."""

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context for forward and loss: autocast to bf16/fp16, or nothing in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (small gradients would flush to zero); a pass-through in fp32 and bf16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    @property
    def pin_memory(self) -> bool:
        """Page-locked batches copy to a CUDA device asynchronously."""
        return self.device.type == "cuda"

    def to_device(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A collated batch on the device (the same tensors when the device is the CPU)."""
        return {k: v.to(self.device, non_blocking=self.pin_memory) for k, v in batch.items()}

    def describe(self) -> dict[str, str]:
        """For tags, reports and checkpoint manifests."""
        return {"device": str(self.device), "device_name": self.name, "precision": self.precision}


@dataclass(frozen=True)
class Machine:
    """What torch sees on this machine: the facts the device decisions depend on."""

    cuda: tuple[str, ...] = ()
    """Names of the visible CUDA devices, by index."""
    cuda_current: int = 0
    cuda_bf16: bool = False
    mps: bool = False
    torch_build: str = ""
    """e.g. ``torch 2.13.0+cpu is a CPU-only build``: said when CUDA is asked for and missing."""

    def devices(self) -> list[str]:
        """Every device torch can use here, for error messages."""
        return ["cpu", *(f"cuda:{i} ({name})" for i, name in enumerate(self.cuda))] + (["mps"] if self.mps else [])


def this_machine() -> Machine:
    cuda = torch.cuda.is_available()
    names = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ()
    build = f"torch {torch.__version__} " + (
        "is a CPU-only build" if torch.version.cuda is None else f"(CUDA {torch.version.cuda}) sees no GPU"
    )
    return Machine(
        cuda=names,
        cuda_current=torch.cuda.current_device() if cuda else 0,
        cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        mps=bool(torch.backends.mps.is_available()),
        torch_build=build,
    )


def resolve_runtime(cfg: TrainConfig, device_override: str | None = None) -> Runtime:
    """``cfg.device`` (or ``device_override``) and ``cfg.precision`` on this machine; ``DeviceError`` with
    the devices found and the fix when it has no such device or precision."""
    machine = this_machine()
    device = torch.device(choose_device(device_override or cfg.device, machine))
    return Runtime(device, choose_precision(cfg.precision, device.type, machine), device_name(device))


def choose_device(spec: str, machine: Machine) -> str:
    """``auto`` -> the current CUDA device, else MPS, else the CPU; an explicit device must exist on
    ``machine``. Returns ``cpu``, ``mps`` or ``cuda:N``."""
    found = ", ".join(machine.devices())
    if spec == "auto":
        return f"cuda:{machine.cuda_current}" if machine.cuda else "mps" if machine.mps else "cpu"
    if spec == "cpu":
        return spec
    if spec == "mps":
        if not machine.mps:
            raise DeviceError(
                f"train.device=mps: Apple's MPS backend is not available here; devices found: {found}. "
                "Use train.device=auto or train.device=cpu."
            )
        return spec
    match = re.fullmatch(r"cuda(?::([0-9]+))?", spec)
    if match is None:
        raise DeviceError(f"train.device={spec!r}: use auto, cpu, cuda, cuda:N or mps")
    if not machine.cuda:
        raise DeviceError(
            f"train.device={spec}: no CUDA device on this machine ({machine.torch_build}); devices found: "
            f"{found}. Use train.device=auto or train.device=cpu here, or run on a machine with an NVIDIA GPU "
            "(make setup installs the CUDA build of torch there)."
        )
    index = machine.cuda_current if match.group(1) is None else int(match.group(1))
    if index >= len(machine.cuda):
        raise DeviceError(
            f"train.device={spec}: this machine has {len(machine.cuda)} CUDA device(s): {found}. Pick one of them "
            "(or check CUDA_VISIBLE_DEVICES)."
        )
    return f"cuda:{index}"


def choose_precision(spec: str, device_type: str, machine: Machine) -> str:
    """``auto`` -> bf16 on a CUDA GPU that supports it, else fp32 (on a CPU bf16 is opt-in: it trades
    precision for a speed-up only some CPUs deliver). An explicit bf16 on a CUDA GPU needs its support."""
    cuda_bf16 = device_type == "cuda" and machine.cuda_bf16
    if spec == "auto":
        return "bf16" if cuda_bf16 else "fp32"
    if spec not in ("fp32", *AUTOCAST_DTYPES):
        raise DeviceError(f"train.precision={spec!r}: use auto, fp32, bf16 or fp16")
    if spec == "bf16" and device_type == "cuda" and not cuda_bf16:
        raise DeviceError(
            "train.precision=bf16: this GPU has no bf16 support (it needs an Ampere or newer GPU); use "
            "train.precision=fp16 (with loss scaling) or auto (fp32 here)."
        )
    return spec


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    if device.type == "mps":
        return "Apple MPS"
    return f"cpu ({_cpu_model()}, {torch.backends.cpu.get_cpu_capability()})"


def configure_determinism(deterministic: bool) -> None:
    """``train.deterministic``: deterministic kernels, no cuDNN autotuning, a fixed cuBLAS workspace and
    IEEE fp32 matmuls; otherwise TF32 matmuls and convolutions and cuDNN autotuning (faster on Ampere and
    newer GPUs, not bit-reproducible). An op without a deterministic kernel warns instead of failing the
    trial."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    precision = "ieee" if deterministic else "tf32"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision  # type: ignore[attr-defined]


@functools.cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
