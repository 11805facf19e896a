"""Device and precision resolution (pure decisions on machine facts), the runtime's autocast and scaler, and
the determinism switches."""

import pytest
import torch

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.devices import (
    DeviceError,
    Machine,
    choose_device,
    choose_precision,
    configure_determinism,
    resolve_runtime,
)

CPU_ONLY = Machine(torch_build="torch 2.13.0+cpu is a CPU-only build")
TWO_H100 = Machine(cuda=("NVIDIA H100", "NVIDIA H100"), cuda_current=1, cuda_bf16=True)
ONE_T4 = Machine(cuda=("Tesla T4",), cuda_bf16=False)
MAC = Machine(mps=True)


@pytest.mark.parametrize(
    ("spec", "machine", "expected"),
    [
        ("auto", CPU_ONLY, "cpu"),
        ("auto", TWO_H100, "cuda:1"),  # the current CUDA device
        ("auto", MAC, "mps"),
        ("cpu", TWO_H100, "cpu"),
        ("cuda", TWO_H100, "cuda:1"),
        ("cuda:0", TWO_H100, "cuda:0"),
        ("cuda:0", ONE_T4, "cuda:0"),
        ("mps", MAC, "mps"),
    ],
)
def test_device_resolution(spec, machine, expected) -> None:
    assert choose_device(spec, machine) == expected


@pytest.mark.parametrize(
    ("spec", "machine", "needles"),
    [
        ("cuda", CPU_ONLY, ["no CUDA device", "CPU-only build", "devices found: cpu", "train.device=auto"]),
        ("cuda:2", TWO_H100, ["has 2 CUDA device(s)", "cuda:0 (NVIDIA H100)", "cuda:1 (NVIDIA H100)"]),
        ("mps", CPU_ONLY, ["MPS backend is not available", "devices found: cpu"]),
        ("gpu", TWO_H100, ["use auto, cpu, cuda, cuda:N or mps"]),
    ],
)
def test_a_missing_device_names_what_was_found_and_the_fix(spec, machine, needles) -> None:
    with pytest.raises(DeviceError) as error:
        choose_device(spec, machine)
    for needle in needles:
        assert needle in str(error.value)


@pytest.mark.parametrize(
    ("spec", "device_type", "machine", "expected"),
    [
        ("auto", "cpu", CPU_ONLY, "fp32"),  # bf16 on a CPU is opt-in
        ("auto", "cuda", TWO_H100, "bf16"),
        ("auto", "cuda", ONE_T4, "fp32"),
        ("auto", "mps", MAC, "fp32"),
        ("fp32", "cuda", TWO_H100, "fp32"),
        ("bf16", "cpu", CPU_ONLY, "bf16"),
        ("fp16", "cpu", CPU_ONLY, "fp16"),
        ("fp16", "cuda", ONE_T4, "fp16"),
        ("bf16", "cuda", TWO_H100, "bf16"),
    ],
)
def test_precision_resolution(spec, device_type, machine, expected) -> None:
    assert choose_precision(spec, device_type, machine) == expected


def test_bf16_on_a_gpu_without_it_says_what_to_use_instead() -> None:
    with pytest.raises(DeviceError, match=r"train\.precision=fp16"):
        choose_precision("bf16", "cuda", ONE_T4)


def test_this_machine_resolves_auto_and_refuses_cuda_when_it_has_none() -> None:
    runtime = resolve_runtime(TrainConfig())
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert runtime.device.type == expected and runtime.describe()["device_name"]
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="devices found"):
            resolve_runtime(TrainConfig(device="cuda"))
        assert resolve_runtime(TrainConfig(device="cuda"), device_override="cpu").device.type == "cpu"


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_autocast_runs_matmuls_in_the_resolved_precision_on_the_cpu(precision, dtype) -> None:
    runtime = resolve_runtime(TrainConfig(device="cpu", precision=precision))
    layer = torch.nn.Linear(4, 4)
    with runtime.autocast():
        out = layer(torch.randn(2, 4))
    assert out.dtype == dtype and layer.weight.dtype == torch.float32  # weights stay fp32


def test_only_fp16_scales_the_loss() -> None:
    for precision, enabled in (("fp32", False), ("bf16", False), ("fp16", True)):
        scaler = resolve_runtime(TrainConfig(device="cpu", precision=precision)).grad_scaler()
        assert scaler.is_enabled() == enabled
        loss = torch.tensor(2.0)
        assert float(scaler.scale(loss)) == (2.0 * 65536 if enabled else 2.0)


def test_determinism_switches_both_ways() -> None:
    try:
        configure_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.fp32_precision == "tf32"
        configure_determinism(True)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    finally:
        configure_determinism(True)
