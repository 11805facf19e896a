"""`make setup`'s torch install: the CUDA build wherever an NVIDIA driver lists a GPU, over a CPU build too."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install_torch.py"
spec = importlib.util.spec_from_file_location("install_torch", SCRIPT)
assert spec and spec.loader
install_torch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_torch)

CUDA = ["install", "--index-url", "https://download.pytorch.org/whl/cu128"]
CUDA += ["--extra-index-url", "https://pypi.org/simple", "torch==2.13.0+cu128"]


@pytest.mark.parametrize(
    ("gpu", "installed", "gpu_only", "expected"),
    [
        (False, None, False, ["install", "torch==2.13.0"]),  # a CPU machine: what pip picks, as always
        (False, "cpu", True, None),
        (True, None, False, CUDA),
        (True, "cpu", False, CUDA),  # a CPU build would satisfy torch==2.13.0: the local version pins CUDA
        (True, "cpu", True, CUDA),  # `make setup` on an environment made before the driver
        (True, "cuda", True, None),
        (True, "cuda", False, CUDA),  # no-op for pip when already there
    ],
)
def test_the_build_follows_the_machine(gpu, installed, gpu_only, expected) -> None:
    assert install_torch.install_args("2.13.0", "cu128", gpu, installed, gpu_only) == expected


def run(tmp_path: Path, with_driver: bool, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if with_driver:  # stands in for the NVIDIA driver's tool, as it answers on a GPU machine
        smi = bin_dir / "nvidia-smi"
        smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5e1d)'\n")
        smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    command = [sys.executable, str(SCRIPT), "2.13.0", "--dry-run", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_a_machine_with_a_driver_gets_the_cuda_build_over_the_cpu_one(tmp_path) -> None:
    done = run(tmp_path, True, "--gpu-only")  # this environment holds the CPU build
    assert done.returncode == 0, done.stderr
    assert "NVIDIA GPU found" in done.stdout and "torch==2.13.0+cu128" in done.stdout
    assert "--index-url https://download.pytorch.org/whl/cu128" in done.stdout


def test_a_machine_without_a_driver_keeps_its_build(tmp_path) -> None:
    done = run(tmp_path, False, "--gpu-only")
    assert done.returncode == 0 and done.stdout == ""
    fresh = run(tmp_path, False)
    assert fresh.stdout.strip().endswith("-m pip install torch==2.13.0")
