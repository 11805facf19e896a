"""``make gpu-smoke``: the first run on a machine with an NVIDIA GPU, in one short script (minutes on one GPU).

1. Versions and devices: torch, CUDA, cuDNN, the driver; per visible GPU its name, compute capability,
   memory, and the precision ``train.precision=auto`` picks there.
2. A trial with attention pooling in the GPU's autocast precision (bf16, or fp16 before compute capability
   8.0): it trains with a finite loss.
3. Determinism: the same trial twice with ``train.deterministic=true``: equal weight hashes.
4. A checkpoint snapshot taken from the GPU (weights and optimizer state): every CPU copy equals its source.
5. The CRF evidence head's validation pass (Viterbi and marginals) timed against the token head's.
6. ``make gpu-check ARGS=--quick``.
7. With two GPUs or more: a 2-trial study with ``hpo.n_workers=2`` and ``hpo.devices=[cuda:0,cuda:1]``.

Each step records ``ok`` (or its error) and its figures; one failing step does not stop the others. Writes
``gpu_smoke.json`` and ``gpu_smoke.md`` to ``--out`` (default ``bench/`` on a CUDA device). Exit 0 when every
step passed, 1 otherwise, 2 without a CUDA device.

Usage: python bench/gpu_smoke.py [--device cuda] [--out DIR] [--skip-gpu-check]
  --device cpu: the same steps on the CPU, to test this script on a machine without a GPU
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from redsm5_hpo.checkpoints.snapshot import SnapshotBuffers
from redsm5_hpo.config.loading import load_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.devices import DeviceError, choose_precision, resolve_runtime, this_machine
from redsm5_hpo.evaluation.predict import predict
from redsm5_hpo.pipeline import run_single, run_study
from redsm5_hpo.pipeline.builders import build_model, split_datasets
from redsm5_hpo.training.optim import build_optimizer

REPO = Path(__file__).resolve().parents[1]


def config(device: str, root: Path, *overrides: str) -> Config:
    return load_config(
        [f"train.device={device}", f"experiments_dir={root}", "model=tiny", *overrides], REPO / "configs"
    )


def versions(device: str) -> dict[str, Any]:
    machine = this_machine()
    gpus = []
    for index, name in enumerate(machine.cuda):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            {
                "index": index,
                "name": name,
                "capability": ".".join(map(str, machine.cuda_capability[index])),
                "memory_bytes": props.total_memory,
                "auto_precision": choose_precision("auto", f"cuda:{index}", machine),
            }
        )
    driver = None
    if machine.cuda:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        found = subprocess.run(query, capture_output=True, text=True, check=False)
        driver = found.stdout.strip().splitlines()[0] if found.returncode == 0 and found.stdout.strip() else None
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "driver": driver,
        "gpus": gpus,
        "device": str(resolve_runtime(config(device, Path(".")).train).device),
    }


def autocast_precision(device: str) -> str:
    """What a GPU run uses by default (``auto``); bf16 on the CPU, where ``auto`` is fp32."""
    runtime = resolve_runtime(config(device, Path(".")).train)
    return runtime.precision if runtime.device.type == "cuda" else "bf16"


def attention_trial(device: str, root: Path) -> dict[str, Any]:
    precision = autocast_precision(device)
    cfg = config(device, root, "model.pooling=attention", f"train.precision={precision}", "train.epochs=1")
    result = run_single(cfg, progress=False)
    report = json.loads(result.report_path.read_text())
    losses = [h["train_loss"] for h in report["history"]]
    return {"ok": all(math.isfinite(v) for v in losses), "precision": precision, "train_loss": losses}


def weights_sha(report_path: Path) -> str:
    """One SHA-256 over the weights of every checkpoint the trial kept (its best and co-best), in order."""
    digest = hashlib.sha256()
    for checkpoint in json.loads(report_path.read_text())["checkpoint_references"]:
        digest.update((Path(checkpoint) / "model.safetensors").read_bytes())
    return digest.hexdigest()


def deterministic_twice(device: str, root: Path) -> dict[str, Any]:
    hashes = []
    for run in ("first", "second"):
        cfg = config(device, root / run, "train.deterministic=true", "train.epochs=2")
        hashes.append(weights_sha(run_single(cfg, progress=False).report_path))
    return {"ok": hashes[0] == hashes[1], "weights_sha256": hashes}


def snapshot_from_device(device: str, root: Path) -> dict[str, Any]:
    cfg = config(device, root)
    runtime = resolve_runtime(cfg.train)
    corpus = load_corpus(cfg.data, cfg.seed)
    model, tokenizer = build_model(cfg, corpus, runtime)
    (train_set,) = split_datasets(cfg, corpus, tokenizer, "train")
    optimizer = build_optimizer(model, cfg.train)
    batch = runtime.to_device(train_set.collate([train_set[i] for i in range(8)]))
    with runtime.compute():
        loss = model.loss(model(batch), batch, cfg.train.evidence_loss_weight)
    loss.backward()
    optimizer.step()  # optimizer moments on the device too
    weights, state = model.state_dict(), {"optimizer": optimizer.state_dict()}
    snapshot = SnapshotBuffers().snapshot(weights, state)
    mismatched = [k for k, v in weights.items() if not torch.equal(snapshot.weights[k], v.detach().cpu())]
    moments = optimizer.state_dict()["state"]
    copied = snapshot.training_state["optimizer"]["state"] if snapshot.training_state else {}
    for index, values in moments.items():
        for name, value in values.items():
            if torch.is_tensor(value) and not torch.equal(copied[index][name], value.detach().cpu()):
                mismatched.append(f"optimizer.{index}.{name}")
    return {"ok": not mismatched, "tensors": len(weights), "bytes": snapshot.nbytes, "mismatched": mismatched}


def crf_timing(device: str, root: Path) -> dict[str, Any]:
    seconds = {}
    for head in ("token", "bio_crf"):
        cfg = config(device, root, f"model.evidence_head={head}")
        runtime = resolve_runtime(cfg.train)
        corpus = load_corpus(cfg.data, cfg.seed)
        model, tokenizer = build_model(cfg, corpus, runtime)
        (val_set,) = split_datasets(cfg, corpus, tokenizer, "validation")
        predict(model, val_set, cfg.train, runtime)  # warm-up
        timed = []
        for _ in range(3):
            if runtime.device.type == "cuda":
                torch.cuda.synchronize(runtime.device)
            started = time.perf_counter()
            predict(model, val_set, cfg.train, runtime)
            timed.append(time.perf_counter() - started)
        seconds[head] = min(timed)
    return {"ok": True, "validation_s": seconds, "crf_over_token": seconds["bio_crf"] / seconds["token"]}


def gpu_check(device: str, out: Path) -> dict[str, Any]:
    command = [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", device, "--quick"]
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, check=False)
    table = (out / "gpu_check.md").read_text() if (out / "gpu_check.md").is_file() else ""
    return {"ok": done.returncode == 0, "exit": done.returncode, "table": table, "stderr": done.stderr[-2000:]}


def two_workers(device: str, root: Path) -> dict[str, Any]:
    overrides = ["hpo.n_trials=2", "train.epochs=1", "hpo.n_workers=2", "hpo.devices=[cuda:0,cuda:1]"]
    result = run_study(config(device, root, *overrides), progress=False)
    report = result.report or {}
    trials = [json.loads(p.read_text()) for p in root.glob("trial_*/evaluation_report.json")]
    names = sorted({t["runtime"]["device_name"] for t in trials})
    return {"ok": report.get("trials", {}).get("completed") == 2, "trial_devices": names}


def run_step(name: str, step: Callable[[], dict[str, Any]], results: dict[str, Any]) -> None:
    started = time.perf_counter()
    try:
        results[name] = step()
    except Exception as e:  # one failing step must not hide the others' results
        results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    results[name]["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{name}: {'ok' if results[name]['ok'] else 'FAILED'} ({results[name]['seconds']} s)", flush=True)


def markdown(results: dict[str, Any]) -> str:
    v = results["versions"]
    gpus = "; ".join(
        f"cuda:{g['index']} {g['name']} (capability {g['capability']}, {g['memory_bytes'] / 2**30:.0f} GiB, "
        f"auto = {g['auto_precision']})"
        for g in v.get("gpus", [])
    )
    lines = [
        f"GPU smoke test (`make gpu-smoke`), {results['date']}: torch {v.get('torch')}, CUDA {v.get('cuda')}, "
        f"cuDNN {v.get('cudnn')}, driver {v.get('driver')}; {gpus or 'no GPU: run on ' + str(v.get('device'))}",
        "",
        "| step | result | seconds |",
        "| --- | --- | --- |",
    ]
    for name, label in (
        ("attention_trial", "attention pooling trial in autocast"),
        ("deterministic", "two deterministic runs, equal weights"),
        ("snapshot", "snapshot from the device equals its source"),
        ("crf_timing", "CRF vs token head, validation pass"),
        ("gpu_check", "gpu-check --quick"),
        ("two_workers", "2-worker study on cuda:0 and cuda:1"),
    ):
        if name not in results:
            continue
        step = results[name]
        detail = step.get("error") or _detail(name, step)
        lines.append(f"| {label} | {'ok' if step['ok'] else 'FAILED'}: {detail} | {step['seconds']} |")
    return "\n".join(lines) + "\n"


def _detail(name: str, step: dict[str, Any]) -> str:
    if name == "attention_trial":
        return f"{step['precision']}, train loss {step['train_loss'][-1]:.4f}"
    if name == "deterministic":
        return f"sha256 {step['weights_sha256'][0][:12]} / {step['weights_sha256'][1][:12]}"
    if name == "snapshot":
        return f"{step['tensors']} weight tensors and the optimizer state, {step['bytes']} bytes"
    if name == "crf_timing":
        s = step["validation_s"]
        return f"{s['bio_crf']:.3f} s vs {s['token']:.3f} s ({step['crf_over_token']:.2f}x)"
    if name == "gpu_check":
        return f"exit {step['exit']}, table in gpu_check.md"
    return f"trials on {', '.join(step['trial_devices'])}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu to test the script without a GPU")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/ on a CUDA device, a temp folder else")
    parser.add_argument("--skip-gpu-check", action="store_true", help="leave out step 6 (gpu-check --quick)")
    args = parser.parse_args()
    try:
        runtime = resolve_runtime(config(args.device, Path(".")).train)
    except DeviceError as e:
        print(f"gpu-smoke needs a CUDA device: {e.problems[0]}", file=sys.stderr)
        return 2
    cuda = runtime.device.type == "cuda"
    out = args.out or (REPO / "bench" if cuda else Path(tempfile.gettempdir()) / "gpu-smoke")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "versions": versions(args.device)}
    with tempfile.TemporaryDirectory(prefix="redsm5-gpu-smoke-") as tmp:
        root = Path(tmp)
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("attention_trial", lambda: attention_trial(args.device, root / "attention")),
            ("deterministic", lambda: deterministic_twice(args.device, root / "deterministic")),
            ("snapshot", lambda: snapshot_from_device(args.device, root / "snapshot")),
            ("crf_timing", lambda: crf_timing(args.device, root / "crf")),
        ]
        if not args.skip_gpu_check:
            steps.append(("gpu_check", lambda: gpu_check(args.device, out)))
        if cuda and torch.cuda.device_count() >= 2:
            steps.append(("two_workers", lambda: two_workers(args.device, root / "workers")))
        for name, step in steps:
            run_step(name, step, results)
    (out / "gpu_smoke.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "gpu_smoke.md").write_text(markdown(results))
    sys.stdout.write(markdown(results) + f"\nwritten to {out}\n")
    return 0 if all(results[name]["ok"] for name, _ in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
