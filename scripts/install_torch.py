"""Install torch at the pinned version, in the build this machine needs (run by `make setup`).

Where an NVIDIA driver answers (`nvidia-smi -L` lists a GPU), the CUDA build from PyTorch's CUDA index,
pinned with its local version (`torch==2.13.0+cu128`), so pip cannot fall back to another build, and
replacing a CPU build already in the environment (a CPU build satisfies a plain `torch==2.13.0`, so pip
would keep it). Anywhere else `torch==2.13.0` as pip picks it for the platform. After a CUDA install the
script checks that torch reports a CUDA version, and fails loudly otherwise.

usage: python scripts/install_torch.py 2.13.0 [--cuda cu128] [--gpu-only] [--dry-run]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys

CUDA_INDEX = "https://download.pytorch.org/whl/{tag}"


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is installed and lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def installed_build(python: str) -> str | None:
    """``cuda`` or ``cpu`` for the torch ``python`` imports; None without torch."""
    probe = "import torch; print('cuda' if torch.version.cuda else 'cpu')"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def install_args(version: str, cuda_tag: str, gpu: bool, installed: str | None, gpu_only: bool) -> list[str] | None:
    """The pip arguments to run, or None when nothing needs installing. ``gpu_only``: only replace a CPU
    build (or no build) on a GPU machine (``make setup`` on an existing environment)."""
    if gpu:
        if gpu_only and installed == "cuda":
            return None
        index = CUDA_INDEX.format(tag=cuda_tag)
        pin = f"torch=={version}+{cuda_tag}"
        return ["install", "--index-url", index, "--extra-index-url", "https://pypi.org/simple", pin]
    return None if gpu_only else ["install", f"torch=={version}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version")
    parser.add_argument("--cuda", default="cu128", help="the CUDA build's tag on PyTorch's index (cu128)")
    parser.add_argument("--gpu-only", action="store_true", help="only replace a CPU build on a GPU machine")
    parser.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    args = parser.parse_args()
    gpu = has_nvidia_gpu()
    pip_args = install_args(args.version, args.cuda, gpu, installed_build(sys.executable), args.gpu_only)
    if pip_args is None:
        return 0
    command = [sys.executable, "-m", "pip", *pip_args]
    if gpu:
        print(f"NVIDIA GPU found: installing the CUDA build of torch ({pip_args[-1]})", flush=True)
    if args.dry_run:
        print(shlex.join(command))
        return 0
    installed = subprocess.run([*command[:4], "--quiet", *command[4:]])
    if installed.returncode != 0:
        print(f"error: `{shlex.join(command)}` failed (exit {installed.returncode})", file=sys.stderr)
        return installed.returncode
    if gpu and installed_build(sys.executable) != "cuda":
        print(f"error: {pip_args[-1]} installed, but torch reports no CUDA version", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
