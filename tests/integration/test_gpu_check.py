"""``make gpu-check``'s and ``make gpu-smoke``'s scripts, run on the CPU (``--device cpu``) with the tiny
encoder: every check runs and the results are written; on a machine without CUDA, the plain scripts say
they need one."""

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

SCRIPT = REPO / "bench" / "gpu_check.py"
SMOKE = REPO / "bench" / "gpu_smoke.py"


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
    assert set(results["throughput"]) == {"fp32 (TF32 off)", "fp32 (TF32 on)", "bf16", "fp16"}
    assert all(row["examples_per_s"] > 0 for row in results["throughput"].values())
    assert [row["tf32"] for row in results["throughput"].values()] == [False, True, False, False]
    for key in ("gpu_to_cpu", "cpu_to_gpu"):
        assert results[key]["finite"] and results[key]["optimizer_state_on"] == ["cpu"]
        assert results[key]["max_probability_difference"] == 0.0  # the same device and precision both ways
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| one training epoch, bf16, batches of 16 |" in table and "fp32 (TF32 on)" in table


def test_the_gpu_smoke_test_runs_its_steps_on_the_cpu(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, str(SMOKE), "--device", "cpu", "--skip-gpu-check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_smoke.json").read_text())
    steps = ("attention_trial", "deterministic", "snapshot", "crf_timing")
    assert all(results[step]["ok"] for step in steps), {s: results[s] for s in steps}
    assert results["attention_trial"]["precision"] == "bf16"  # the autocast a GPU uses, here on the CPU
    first, second = results["deterministic"]["weights_sha256"]
    assert first == second and results["snapshot"]["mismatched"] == []
    assert results["versions"]["torch"] == torch.__version__ and "two_workers" not in results
    table = (tmp_path / "gpu_smoke.md").read_text()
    assert "| attention pooling trial in autocast | ok: bf16" in table and "CRF vs token head" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize(("script", "name"), [(SCRIPT, "gpu-check"), (SMOKE, "gpu-smoke")])
def test_without_cuda_the_gpu_scripts_say_they_need_one(script, name) -> None:
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and f"{name} needs a CUDA device" in done.stderr and "Traceback" not in done.stderr
