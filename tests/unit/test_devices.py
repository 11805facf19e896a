"""Device and precision resolution (pure decisions on machine facts), the runtime's autocast and scaler, the
determinism switches, a worker's GPU, and what a failing GPU looks like."""

import logging
import warnings
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend

from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.device_errors import is_device_error, is_sticky_cuda_error
from redsm5_hpo.devices import (
    NONDETERMINISTIC,
    DeviceError,
    Machine,
    Runtime,
    attention_backends,
    choose_device,
    choose_precision,
    configure_determinism,
    reported_nondeterminism,
    resolve_runtime,
    worker_gpu,
)

CPU_ONLY = Machine(torch_build="torch 2.13.0+cpu is a CPU-only build")
TWO_H100 = Machine(cuda=("NVIDIA H100", "NVIDIA H100"), cuda_capability=((9, 0), (9, 0)), cuda_current=1)
ONE_T4 = Machine(cuda=("Tesla T4",), cuda_capability=((7, 5),))
A100_AND_V100 = Machine(cuda=("NVIDIA A100", "Tesla V100"), cuda_capability=((8, 0), (7, 0)))
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
    ("spec", "device", "machine", "expected"),
    [
        ("auto", "cpu", CPU_ONLY, "fp32"),  # bf16 on a CPU is opt-in
        ("auto", "cuda:1", TWO_H100, "bf16"),
        ("auto", "cuda:0", ONE_T4, "fp16"),  # bf16 would be emulated there: fp16 with loss scaling
        ("auto", "cuda:0", A100_AND_V100, "bf16"),
        ("auto", "cuda:1", A100_AND_V100, "fp16"),  # the device the run uses decides, not the current one
        ("auto", "mps", MAC, "fp32"),
        ("fp32", "cuda:0", TWO_H100, "fp32"),
        ("bf16", "cpu", CPU_ONLY, "bf16"),
        ("fp16", "cpu", CPU_ONLY, "fp16"),
        ("fp16", "cuda:0", ONE_T4, "fp16"),
        ("bf16", "cuda:0", TWO_H100, "bf16"),
        ("bf16", "cuda:0", A100_AND_V100, "bf16"),
    ],
)
def test_precision_resolution(spec, device, machine, expected) -> None:
    assert choose_precision(spec, device, machine) == expected


@pytest.mark.parametrize(
    ("device", "machine", "gpu"), [("cuda:0", ONE_T4, "Tesla T4"), ("cuda:1", A100_AND_V100, "V100")]
)
def test_bf16_on_a_gpu_without_it_in_hardware_says_what_to_use_instead(device, machine, gpu) -> None:
    with pytest.raises(DeviceError) as error:
        choose_precision("bf16", device, machine)
    for needle in (device, gpu, "needs 8.0", "train.precision=fp16"):
        assert needle in str(error.value)


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
    with runtime.compute():
        out = layer(torch.randn(2, 4))
    assert out.dtype == dtype and layer.weight.dtype == torch.float32  # weights stay fp32


def test_only_fp16_scales_the_loss() -> None:
    for precision, enabled in (("fp32", False), ("bf16", False), ("fp16", True)):
        scaler = resolve_runtime(TrainConfig(device="cpu", precision=precision)).grad_scaler()
        assert scaler.is_enabled() == enabled
        loss = torch.tensor(2.0)
        assert float(scaler.scale(loss)) == (2.0 * 65536 if enabled else 2.0)


def test_determinism_switches_both_ways_through_one_tf32_api() -> None:
    def reads() -> tuple[object, ...]:  # torch raises on some of these after a mix of its two TF32 APIs
        return (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.get_float32_matmul_precision(),
            torch.backends.cuda.matmul.fp32_precision,
        )

    try:
        torch.backends.cuda.matmul.fp32_precision = "tf32"  # as a library might set it first
        configure_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark and reads() == (True, True, "high", "tf32")
        configure_determinism(True)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert reads() == (False, False, "highest", "ieee")
    finally:
        configure_determinism(True)


def test_a_deterministic_run_on_cuda_gets_the_math_attention_kernel_only() -> None:
    assert attention_backends("cuda", True) == [SDPBackend.MATH]
    assert attention_backends("cuda", False) is None and attention_backends("cpu", True) is None
    query = torch.randn(1, 2, 4, 8)
    with Runtime(torch.device("cpu"), "fp32", "cpu", deterministic=True).compute():
        out = torch.nn.functional.scaled_dot_product_attention(query, query, query)
    assert out.shape == query.shape


def test_ops_without_a_deterministic_kernel_make_one_warning_per_trial(caplog) -> None:
    with caplog.at_level("WARNING", logger="redsm5_hpo"), warnings.catch_warnings(record=True) as passed:
        warnings.simplefilter("always")
        with reported_nondeterminism("trial abc"):
            for op in ("scatter_add_cuda_kernel", "index_add_cuda_", "scatter_add_cuda_kernel"):
                warnings.warn(f"{op}{NONDETERMINISTIC}, but you set ...", stacklevel=1)
            warnings.warn("something else", stacklevel=1)
    (record,) = [r for r in caplog.records if "not bit-reproducible" in r.message]
    assert "trial abc" in record.message and "index_add_cuda_, scatter_add_cuda_kernel ran" in record.message
    assert [str(w.message) for w in passed] == ["something else"]  # other warnings pass through


def test_torch_still_words_its_nondeterminism_warning_as_we_read_it() -> None:
    """The one string of torch's that ``reported_nondeterminism`` depends on, in the installed build."""
    import mmap
    from pathlib import Path

    library = next(Path(torch.__file__).parent.joinpath("lib").glob("libtorch_cpu.*"))
    with library.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        assert data.find(f"{NONDETERMINISTIC}, but you set 'torch.use_deterministic_algorithms(True".encode()) >= 0


@pytest.mark.parametrize(
    ("device", "visible", "expected"),
    [
        ("cuda:1", None, ({"CUDA_VISIBLE_DEVICES": "1"}, "cuda")),
        ("cuda:1", "4,6", ({"CUDA_VISIBLE_DEVICES": "6"}, "cuda")),  # the N-th GPU this process sees
        ("cuda:0", "GPU-8f1a,GPU-22c0", ({"CUDA_VISIBLE_DEVICES": "GPU-8f1a"}, "cuda")),
        ("cuda:3", "4,6", ({}, "cuda:3")),  # not visible here: the worker names the devices it finds
        ("cuda", None, ({}, "cuda")),
        ("cpu", None, ({}, "cpu")),
        (None, "0", ({}, None)),
    ],
)
def test_a_worker_on_a_gpu_sees_only_that_gpu(device, visible, expected) -> None:
    assert worker_gpu(device, visible) == expected


def test_a_lost_cuda_context_and_an_oom_are_device_errors_and_nothing_else_is() -> None:
    assert is_sticky_cuda_error(torch.AcceleratorError("CUDA error: device-side assert triggered"))
    assert is_sticky_cuda_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_device_error(oom) and not is_sticky_cuda_error(oom)  # an OOM fails its trial, not the process
    for other in (RuntimeError("Error(s) in loading state_dict"), ValueError("device-side assert triggered")):
        assert not is_device_error(other)


def test_an_unreadable_cpuinfo_is_a_warning_and_the_cpu_is_named_anyway(monkeypatch, caplog) -> None:
    from redsm5_hpo import devices

    real_read = Path.read_text

    def refuse(self, *args, **kwargs):
        if str(self) == "/proc/cpuinfo":
            raise PermissionError(13, "Permission denied", "/proc/cpuinfo")
        return real_read(self, *args, **kwargs)

    devices._cpu_model.cache_clear()
    monkeypatch.setattr(Path, "read_text", refuse)
    try:
        with caplog.at_level(logging.WARNING, logger="redsm5_hpo.devices"):
            name = devices._cpu_model()
    finally:
        devices._cpu_model.cache_clear()
    assert name  # the platform's name for it
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("could not read /proc/cpuinfo ([Errno 13] Permission denied")
