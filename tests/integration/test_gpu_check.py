"""``make gpu-check``'s script, run on the CPU (``--device cpu``) with the tiny encoder: every check runs and
the results are written; on a machine without CUDA, the plain script says it needs one."""

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

SCRIPT = REPO / "bench" / "gpu_check.py"


def test_the_gpu_check_runs_its_checks_on_the_cpu(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert results["tiny_study"]["finite_test_metrics"]
    assert set(results["throughput"]) == {"fp32", "bf16", "fp16"}
    assert all(row["examples_per_s"] > 0 for row in results["throughput"].values())
    for key in ("gpu_to_cpu", "cpu_to_gpu"):
        assert results[key]["finite"] and results[key]["optimizer_state_on"] == ["cpu"]
        assert results[key]["max_probability_difference"] == 0.0  # the same device and precision both ways
    assert "| one training epoch, bf16 |" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_cuda_the_gpu_check_says_it_needs_one() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and "gpu-check needs a CUDA device" in done.stderr and "Traceback" not in done.stderr
