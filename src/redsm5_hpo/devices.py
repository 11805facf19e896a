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
import gc
import logging
import os
import platform
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.schema import TrainConfig

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CUBLAS_WORKSPACE_CONFIG = ":4096:8"
"""cuBLAS needs a fixed workspace to be deterministic (CUDA >= 10.2); set before the first CUDA call."""
BF16_CAPABILITY = (8, 0)
"""bf16 in hardware: Ampere (compute capability 8.0) and newer. ``torch.cuda.is_bf16_supported()`` also says
yes on older GPUs, where bf16 is emulated and slow."""
NONDETERMINISTIC = " does not have a deterministic implementation"
"""How torch's warning for an op without a deterministic kernel reads (``<op>`` + this + ``, but you set
...``) under ``torch.use_deterministic_algorithms(True, warn_only=True)``; a test checks torch still says it."""

log = logging.getLogger(__name__)


class DeviceError(ConfigError):
    """The configured device or precision is not available on this machine."""

    def __init__(self, problem: str):
        super().__init__([problem])


def release_device_memory() -> None:
    """Between trials: collect the finished trial's objects and hand the CUDA cache back to the device, so
    the next trial (maybe a larger encoder) starts with the whole GPU."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class Runtime:
    """A resolved device and precision."""

    device: torch.device
    precision: str
    """``fp32``, ``bf16`` or ``fp16`` (never ``auto``)."""
    name: str
    """What the device is: ``NVIDIA H200``, ``cpu (AMD EPYC, AVX512)``, ``Apple MPS``."""
    deterministic: bool = False
    """``train.deterministic``: forward passes use deterministic kernels only (``compute``)."""

    def compute(self) -> contextlib.AbstractContextManager[Any]:
        """The context every forward pass and loss runs in: autocast to bf16/fp16 (nothing in fp32) and, for
        a deterministic run on CUDA, SDPA's math attention kernel (``attention_backends``)."""
        backends = attention_backends(self.device.type, self.deterministic)
        if self.precision == "fp32" and backends is None:
            return contextlib.nullcontext()  # the common CPU case, once per step: nothing to enter
        stack = contextlib.ExitStack()
        if self.precision != "fp32":
            stack.enter_context(torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision]))
        if backends is not None:
            stack.enter_context(sdpa_kernel(backends))
        return stack

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (small gradients would flush to zero); a pass-through in fp32 and bf16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    @property
    def pin_memory(self) -> bool:
        """Page-locked batches copy to a CUDA device asynchronously."""
        return self.device.type == "cuda"

    def to_device(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A collated batch on the device (the same tensors when the device is the CPU, where it was collated)."""
        if self.device.type == "cpu":
            return dict(batch)
        return {k: v.to(self.device, non_blocking=self.pin_memory) for k, v in batch.items()}

    def describe(self) -> dict[str, str]:
        """For tags, reports and checkpoint manifests."""
        return {"device": str(self.device), "device_name": self.name, "precision": self.precision}


@dataclass(frozen=True)
class Machine:
    """What torch sees on this machine: the facts the device decisions depend on."""

    cuda: tuple[str, ...] = ()
    """Names of the visible CUDA devices, by index."""
    cuda_capability: tuple[tuple[int, int], ...] = ()
    """(major, minor) compute capability of each visible CUDA device, by index."""
    cuda_current: int = 0
    mps: bool = False
    torch_build: str = ""
    """What torch is here and what gives it a GPU (``torch 2.13.0+cpu is a CPU-only build; ... make setup
    ...``): said when CUDA is asked for and missing."""

    def devices(self) -> list[str]:
        """Every device torch can use here, for error messages."""
        return ["cpu", *(f"cuda:{i} ({name})" for i, name in enumerate(self.cuda))] + (["mps"] if self.mps else [])


def this_machine() -> Machine:
    cuda = torch.cuda.is_available()
    names = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ()
    build = (
        f"torch {torch.__version__} is a CPU-only build; on a machine with an NVIDIA GPU `make setup` replaces it "
        "with the CUDA build"
        if torch.version.cuda is None
        else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: check that `nvidia-smi` lists one "
        "and that CUDA_VISIBLE_DEVICES does not hide it"
    )
    return Machine(
        cuda=names,
        cuda_capability=tuple(torch.cuda.get_device_capability(i) for i in range(len(names))),
        cuda_current=torch.cuda.current_device() if cuda else 0,
        mps=bool(torch.backends.mps.is_available()),
        torch_build=build,
    )


def resolve_runtime(cfg: TrainConfig, device_override: str | None = None) -> Runtime:
    """``cfg.device`` (or ``device_override``) and ``cfg.precision`` on this machine; ``DeviceError`` with
    the devices found and the fix when it has no such device or precision."""
    machine = this_machine()
    chosen = choose_device(device_override or cfg.device, machine)
    device = torch.device(chosen)
    return Runtime(device, choose_precision(cfg.precision, chosen, machine), device_name(device), cfg.deterministic)


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
            f"{found}. Use train.device=auto or train.device=cpu here, or run on a machine with an NVIDIA GPU."
        )
    index = machine.cuda_current if match.group(1) is None else int(match.group(1))
    if index >= len(machine.cuda):
        raise DeviceError(
            f"train.device={spec}: this machine has {len(machine.cuda)} CUDA device(s): {found}. Pick one of them "
            "(or check CUDA_VISIBLE_DEVICES)."
        )
    return f"cuda:{index}"


def choose_precision(spec: str, device: str, machine: Machine) -> str:
    """``auto`` -> on a CUDA device, bf16 where the device has it in hardware (compute capability 8.0+),
    else fp16 with loss scaling; fp32 on a CPU or MPS (on a CPU bf16 is opt-in: it trades precision for a
    speed-up only some CPUs deliver). An explicit bf16 on a CUDA device needs that capability. ``device``
    is what ``choose_device`` returned: the device asked about is the one the run uses."""
    capability = cuda_capability(device, machine)
    if spec == "auto":
        if capability is None:
            return "fp32"
        return "bf16" if capability >= BF16_CAPABILITY else "fp16"
    if spec not in ("fp32", *AUTOCAST_DTYPES):
        raise DeviceError(f"train.precision={spec!r}: use auto, fp32, bf16 or fp16")
    if spec == "bf16" and capability is not None and capability < BF16_CAPABILITY:
        major, minor = capability
        raise DeviceError(
            f"train.precision=bf16: {device} ({machine.cuda[int(device.partition(':')[2] or 0)]}) has compute "
            f"capability {major}.{minor}; bf16 needs 8.0 or newer (Ampere: A100, A10, L4, H100, ...). Use "
            "train.precision=fp16 (with loss scaling), which train.precision=auto picks on this GPU, or fp32."
        )
    return spec


def cuda_capability(device: str, machine: Machine) -> tuple[int, int] | None:
    """The compute capability of ``device`` (``cuda:N``) on ``machine``; None for a CPU or MPS device."""
    if not device.startswith("cuda"):
        return None
    index = int(device.partition(":")[2] or machine.cuda_current)
    return machine.cuda_capability[index] if index < len(machine.cuda_capability) else (0, 0)


def attention_backends(device_type: str, deterministic: bool) -> list[SDPBackend] | None:
    """The SDPA kernels a forward pass may use; None: any. A deterministic run on CUDA gets the math kernel
    only: the flash and memory-efficient kernels' backward passes are not deterministic."""
    return [SDPBackend.MATH] if deterministic and device_type == "cuda" else None


def worker_gpu(device: str | None, visible: str | None) -> tuple[dict[str, str], str | None]:
    """How a worker process for ``device`` is started: ``cuda:N`` becomes ``CUDA_VISIBLE_DEVICES`` = the
    N-th GPU this process sees (``visible``: its own ``CUDA_VISIBLE_DEVICES``, None when unset) and the
    device ``cuda`` inside, so the worker's CUDA context, pinned memory and DataLoader pin thread all live
    on its GPU and none on GPU 0. Any other device is passed on as it is. Returns (environment, device)."""
    match = re.fullmatch(r"cuda:([0-9]+)", device or "")
    if match is None:
        return {}, device
    index = int(match.group(1))
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible is not None else None
    if ids is not None and index >= len(ids):
        return {}, device  # not a GPU this process sees: the worker says so (``choose_device``)
    return {"CUDA_VISIBLE_DEVICES": ids[index] if ids is not None else str(index)}, "cuda"


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
    trial (``reported_nondeterminism`` turns that into one WARNING per trial). TF32 is set through one API
    (``set_float32_matmul_precision`` and the ``allow_tf32`` flags), so every later read of either torch API
    answers instead of raising about a mix of the two."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.set_float32_matmul_precision("highest" if deterministic else "high")
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic


@contextlib.contextmanager
def reported_nondeterminism(what: str) -> Iterator[None]:
    """While the block runs, torch's warnings about ops without a deterministic kernel are collected (each
    op once); afterwards one WARNING names them: ``what`` (a trial) is not bit-reproducible. Every other
    warning passes through as usual."""
    ops: set[str] = set()
    with warnings.catch_warnings():
        warnings.filterwarnings("always", message=f".*{NONDETERMINISTIC}")
        shown = warnings.showwarning

        def collect(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            text = str(message)
            if NONDETERMINISTIC in text:
                ops.add(text.partition(NONDETERMINISTIC)[0].strip())
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = collect
        try:
            yield
        finally:
            if ops:
                log.warning(
                    "%s is not bit-reproducible: %s ran without a deterministic kernel on this device "
                    "(train.deterministic=true makes every other op deterministic; a resume continues, but its "
                    "results may differ slightly from an uninterrupted run's)",
                    what,
                    ", ".join(sorted(ops)),
                )


@functools.cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError as e:
        log.warning(
            "could not read /proc/cpuinfo (%s); the CPU is named as the platform reports it in the run's tags and "
            "reports (nothing to do unless you compare timings across machines)",
            e,
        )
    return platform.processor() or platform.machine() or "unknown CPU"
