"""Benchmarks measured side by side in one run; writes bench/results.json and bench/results.md.

B1 checkpoint storage: a multi-trial study with the bundled encoder. Keep-all is measured in the same
   run as the bytes of every checkpoint written (what a keep-everything policy would hold at the end
   and at its peak); ours is what is on disk at the end and the most that was ever on disk at once.
B2 checkpoint save: the time the loop is blocked by each save (waiting for the previous write, the
   space check, the snapshot into CPU memory) as a share of the epoch's training time, on full epochs; the
   write, hashes and retention run in the background.
B3 resume: process launch to the first training step, resuming a killed study vs starting it fresh.
B4 tracking: p95 latency of the loop's metric log call with the tracker up and down, and the journal's
   replay throughput (``bench/tracking.py``).
B5 disk guard: CPU per free-space check as a share of its interval (``bench/peers.py``).
B6 overhead: epoch time of our full loop vs a bare PyTorch loop vs the Hugging Face Trainer, each scoring
   validation with our functions every epoch (``bench/peers.py``); B1 also runs its trials through the
   Trainer's ``save_total_limit`` recipe.
B7 pruning: trial-epochs until the best validation score, median pruner vs none (``bench/pruning.py``).
B8 throughput: training examples/s and tokens/s of our loop in fp32 and bf16 (``bench/peers.py``).
B9 workers: a 6-trial tiny study with 2 workers vs 1 (wall-clock), and B1's peak with 2 workers
   (``bench/workers.py``).
B10 step overhead: CPU time per training step of our loop vs a bare loop on the tiny encoder, whose steps
   take milliseconds as a GPU's do (``bench/peers.py``).
B11 a bucket: B2's stall per save and B1's bytes with ``remote.uri`` on a local S3-compatible server, and
   the upload throughput vs a local write of the same checkpoint (``bench/bucket.py``).
B12 the winner's curse: the best search trial's validation objective vs its configuration's mean over 3
   seeds (``hpo.confirm``), and the width of the test macro-F1 interval (``bench/confirm.py``).

Usage: python bench/run.py [--quick] [--only B4 ...]
  --quick: the tiny encoder, for a smoke check of the harness
  --only: run these benchmarks and keep the other rows of the last results.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

from redsm5_hpo.checkpoints import manager as manager_module
from redsm5_hpo.checkpoints.disk import human_bytes, tree_bytes
from redsm5_hpo.config.loading import load_config
from redsm5_hpo.config.schema import TrainConfig
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.pipeline import run_study
from redsm5_hpo.training import loop as loop_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bucket import bucket_bytes, s3_server, upload_vs_local
from confirm import b12_winners_curse
from peers import b1_hf_trainer, b5_disk_guard, b6_overhead, b8_throughput, b10_step_overhead
from pruning import b7_pruning
from tracking import b4_tracking
from workers import b9_workers

REPO = Path(__file__).resolve().parents[1]


def checkpoint_bytes(root: Path) -> int:
    return sum(tree_bytes(d) for d in root.glob("trial_*/checkpoints"))


class Probe:
    """Wraps the manager's save, the store's write and the loop's epoch to measure bytes and time without
    changing behaviour."""

    def __init__(self, root: Path):
        self.root = root
        self.peak = 0
        self.written = 0
        self.save_seconds: list[float] = []
        """The loop blocked by each save (wait for the previous write, space check, snapshot)."""
        self.write_seconds: list[float] = []
        """Each background write (serialize, fsync, hash, commit)."""
        self.epoch_seconds: list[float] = []
        self.full_sizes: list[int] = []

    def __enter__(self) -> Probe:
        self._write = manager_module.CheckpointStore.write
        self._train_epoch = loop_module._train_epoch
        probe = self

        def write(store, weights, training_state, meta):  # the background write, before retention runs
            started = time.perf_counter()
            saved = probe._write(store, weights, training_state, meta)
            probe.write_seconds.append(time.perf_counter() - started)
            probe.written += saved.size_bytes
            probe.full_sizes.append(tree_bytes(saved.path))  # files + manifest, as measured for the peak
            probe.peak = max(probe.peak, checkpoint_bytes(probe.root))
            return saved

        def timed_manager_save(manager, model, training_state, meta):
            start = time.perf_counter()
            result = original_manager_save(manager, model, training_state, meta)
            probe.save_seconds.append(time.perf_counter() - start)
            return result

        def timed_epoch(*args, **kwargs):
            start = time.perf_counter()
            result = probe._train_epoch(*args, **kwargs)
            probe.epoch_seconds.append(time.perf_counter() - start)
            return result

        original_manager_save = manager_module.CheckpointManager.save
        self._manager_save = original_manager_save
        manager_module.CheckpointStore.write = write
        manager_module.CheckpointManager.save = timed_manager_save
        loop_module._train_epoch = timed_epoch
        return self

    def __exit__(self, *exc: object) -> None:
        manager_module.CheckpointStore.write = self._write
        manager_module.CheckpointManager.save = self._manager_save
        loop_module._train_epoch = self._train_epoch


def study(root: Path, overrides: list[str]) -> Probe:
    config = load_config([f"experiments_dir={root}", *overrides], REPO / "configs")
    with Probe(root) as probe:
        run_study(config, progress=False)
    return probe


def b1_storage(workdir: Path, encoder: list[str]) -> dict:
    root = workdir / "b1"
    # short epochs keep the run quick; PR-AUC as the objective because at 4 steps an epoch macro-F1 at the
    # 0.5 threshold is often 0 for every epoch, and a trial whose epochs all tie keeps every one (co-best)
    base = [*encoder, "train.epochs=3", "train.max_steps_per_epoch=4"]
    base.append("train.optimization_metric=val_criteria_macro_pr_auc")
    probe = study(root, [*base, "hpo.n_trials=4"])
    (db,) = root.glob("study_*/optuna.db")
    trials = optuna.load_study(study_name=db.parent.name, storage=f"sqlite:///{db}").trials
    hf = b1_hf_trainer(workdir, [t.params for t in trials], base)
    kept = checkpoint_bytes(root)
    full = max(probe.full_sizes)
    weights = min(tree_bytes(p) for p in root.glob("trial_*/checkpoints/epoch_*"))
    bound = 2 * full + weights  # the resume point + the next save in flight + the best (weights only)
    return {
        "checkpoints_written": len(probe.full_sizes),
        "keep_all_bytes": probe.written,
        "kept_bytes": kept,
        "peak_bytes": probe.peak,
        "reduction_at_end": 1 - kept / probe.written,
        "peak_reduction": 1 - probe.peak / probe.written,
        "peak_bound_bytes": bound,
        "peak_within_bound": probe.peak <= bound,
        "hf_trainer_kept_bytes": hf["kept_bytes"],
        "hf_trainer_peak_bytes": hf["peak_bytes"],
        "reduction_vs_hf_trainer": 1 - kept / hf["kept_bytes"],
    }


def b2_save_time(workdir: Path, encoder: list[str]) -> dict:
    probe = study(workdir / "b2", [*encoder, "hpo.n_trials=1", "train.epochs=3"])
    save = statistics.median(probe.save_seconds)
    epoch = statistics.median(probe.epoch_seconds)
    return {
        "median_save_seconds": save,
        "max_save_seconds": max(probe.save_seconds),
        "median_write_seconds": statistics.median(probe.write_seconds),
        "median_epoch_seconds": epoch,
        "blocked_share": save / epoch,
        "max_blocked_share": max(probe.save_seconds) / epoch,
        "saves": len(probe.save_seconds),
    }


def _launch_to_training(root: Path, args: list[str], fault: str | None = None) -> tuple[float, int]:
    """Seconds from process launch to the "training from epoch" record, and the process's exit code."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REDSM5_FAULT", None)
    if fault:
        env["REDSM5_FAULT"] = fault
    seen = {line for path in root.glob("trial_*/logs/events.jsonl") for line in path.read_text().splitlines()}
    start = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "redsm5_hpo", *args, f"experiments_dir={root}", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    for path in root.glob("trial_*/logs/events.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if line not in seen and record["message"].startswith("training from epoch"):
                started = dt.datetime.fromisoformat(record["timestamp"]).timestamp()
                return started - start, result.returncode
    raise RuntimeError(f"no training start found: {result.stdout[-2000:]} {result.stderr[-2000:]}")


def b3_resume(workdir: Path, encoder: list[str], repetitions: int = 3) -> dict:
    """Process launch to first training step: a fresh study vs resuming one killed in its second epoch."""
    overrides = [*encoder, "hpo.n_trials=1", "train.epochs=2", "train.max_steps_per_epoch=5"]
    fresh, resume = [], []
    for i in range(repetitions):
        root = workdir / f"b3_{i}"
        seconds, code = _launch_to_training(root, ["tune", *overrides], fault="mid_epoch:7")
        assert code == -9, code
        fresh.append(seconds)
        seconds, code = _launch_to_training(root, ["resume"])
        assert code == 0, code
        resume.append(seconds)
    return {
        "fresh_start_seconds": statistics.median(fresh),
        "resume_seconds": statistics.median(resume),
        "ratio": statistics.median(resume) / statistics.median(fresh),
        "repetitions": repetitions,
    }


def b11_bucket(workdir: Path, encoder: list[str]) -> dict:
    with s3_server() as uri:
        remote = [f"remote.uri={uri}", "remote.cache_max_mb=0"]
        saves = study(workdir / "b11-saves", [*encoder, "hpo.n_trials=1", "train.epochs=3", *remote])
        save, epoch = statistics.median(saves.save_seconds), statistics.median(saves.epoch_seconds)
        base = [*encoder, "train.epochs=3", "train.max_steps_per_epoch=4"]
        base.append("train.optimization_metric=val_criteria_macro_pr_auc")
        with s3_server() as storage_uri:  # its own bucket: only this study's checkpoints in it
            storage = study(workdir / "b11-storage", [*base, "hpo.n_trials=4", f"remote.uri={storage_uri}"])
            in_bucket = bucket_bytes(storage_uri)
        throughput = upload_vs_local(workdir, uri, max(saves.full_sizes))
    return {
        "median_save_seconds": save,
        "median_epoch_seconds": epoch,
        "blocked_share": save / epoch,
        "max_blocked_share": max(saves.save_seconds) / epoch,
        "saves": len(saves.save_seconds),
        "keep_all_bytes": storage.written,
        "bucket_bytes_at_end": in_bucket,
        "reduction_at_end": 1 - in_bucket / storage.written,
        **throughput,
    }


def machine() -> str:
    """What the numbers were measured on."""
    runtime = resolve_runtime(TrainConfig())
    return f"{runtime.name}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.python_version()}"


def _percentages(values: list[float]) -> str:
    return ", ".join(f"{v:+.1%}" for v in values)


def markdown(results: dict) -> str:
    b1, b2, b3 = results["B1_checkpoint_storage"], results["B2_checkpoint_save"], results["B3_resume"]
    b4, b5, b6, b7, b8 = (
        results[k] for k in ("B4_tracking", "B5_disk_guard", "B6_overhead", "B7_pruning", "B8_throughput")
    )
    b7n, b7m = b7["without_pruner"], b7["median_pruner"]
    b9 = results["B9_workers"]
    rows = [
        "| id | what | requirement | goal | measured |",
        "| --- | --- | --- | --- | --- |",
        f"| B1 | checkpoint bytes kept at the end vs keep-all ({b1['checkpoints_written']} checkpoints written) "
        f"| >= 60% less | >= 95% less | {b1['reduction_at_end']:.1%} less ({human_bytes(b1['kept_bytes'])} vs "
        f"{human_bytes(b1['keep_all_bytes'])}) |",
        f"| B1 | peak checkpoint bytes on disk vs keep-all | | <= last + best + 1 in flight "
        f"({human_bytes(b1['peak_bound_bytes'])}) | {human_bytes(b1['peak_bytes'])} "
        f"({'within' if b1['peak_within_bound'] else 'over'} the bound; {b1['peak_reduction']:.1%} below keep-all) |",
        f"| B1 | bytes kept at the end vs the Hugging Face Trainer (`save_total_limit=2`, `load_best_model_at_end`) "
        f"on the same trials | | >= 90% less | {b1['reduction_vs_hf_trainer']:.1%} less "
        f"({human_bytes(b1['kept_bytes'])} vs {human_bytes(b1['hf_trainer_kept_bytes'])}); peak "
        f"{human_bytes(b1['peak_bytes'])} vs {human_bytes(b1['hf_trainer_peak_bytes'])} |",
        f"| B2 | loop blocked per checkpoint save (wait for the previous write, space check, snapshot to CPU "
        f"memory), share of the epoch's training time | | <= 1% | {b2['blocked_share']:.2%} "
        f"({b2['median_save_seconds'] * 1000:.0f} ms of {b2['median_epoch_seconds']:.1f} s, median of {b2['saves']}; "
        f"the first save of the trial {b2['max_blocked_share']:.2%}); the write itself "
        f"({b2['median_write_seconds']:.2f} s) runs in the background |",
        f"| B3 | process start to first training step: resume vs fresh start | <= 120 s | far under "
        f"| resume {b3['resume_seconds']:.1f} s, fresh {b3['fresh_start_seconds']:.1f} s "
        f"(median of {b3['repetitions']}) |",
        f"| B4 | p95 latency of the loop's metric log call ({b4['metrics_per_call']} metrics), tracker up "
        f"| <= 100 ms | <= 0.1 ms | {b4['p95_ms_tracker_up']:.3f} ms (calls back to back: "
        f"{b4['p95_ms_tracker_up_back_to_back']:.3f} ms; with the fsync in the call, as before the group commit: "
        f"{b4['p95_ms_fsync_in_call']:.2f} ms; a synchronous MLflow client: "
        f"{b4['p95_ms_synchronous_mlflow']:.1f} ms) |",
        f"| B4 | same, tracker down | <= 100 ms | <= 0.1 ms | {b4['p95_ms_tracker_down']:.3f} ms |",
        f"| B4 | floor of this machine in the same harness: JSON-encoding the call's metrics, nothing else | | | "
        f"{b4['p95_ms_json_encode_floor']:.3f} ms |",
        f"| B4 | journal replay throughput once the tracker is back | | | "
        f"{b4['replay_records_per_s']:,.0f} metrics/s (median of {b4['repetitions']}) |",
        f"| B5 | disk guard CPU per check, share of its {b5['interval_s']:.0f} s interval | | < 0.1% "
        f"| {b5['cpu_s_per_check'] * 1e6:.0f} us per check, {b5['cpu_share']:.5%} |",
        f"| B6 | epoch time, each loop scoring validation with our functions every epoch: ours vs a bare "
        f"PyTorch loop | | <= 5% more | {b6['overhead_vs_bare']:+.1%} (median of the repetitions' ratios: "
        f"{_percentages(b6['overhead_vs_bare_per_repetition'])}; median epochs {b6['ours_s_per_epoch']:.2f} s vs "
        f"{b6['bare_pytorch_s_per_epoch']:.2f} s) |",
        f"| B6 | same, vs the Hugging Face Trainer (saving every epoch) | | <= the Trainer "
        f"| {b6['overhead_vs_hf_trainer']:+.1%} ({_percentages(b6['overhead_vs_hf_trainer_per_repetition'])}; "
        f"{b6['ours_s_per_epoch']:.2f} s vs {b6['hf_trainer_s_per_epoch']:.2f} s) |",
        f"| B6 | training part of the epoch: ours / bare / Trainer | | | {b6['ours_train_s_per_epoch']:.2f} s / "
        f"{b6['bare_pytorch_train_s_per_epoch']:.2f} s / {b6['hf_trainer_train_s_per_epoch']:.2f} s |",
        f"| B7 | trial-epochs of the study, median pruner vs none | | >= 40% fewer at an equal best "
        f"| {b7['epochs_total_reduction']:.0%} fewer ({b7m['epochs_total']} vs {b7n['epochs_total']}; best "
        f"{b7m['best_value']:.4f} vs {b7n['best_value']:.4f}; {b7m['pruned_trials']} of {b7['n_trials']} trials "
        f"pruned) |",
        f"| B7 | trial-epochs until the best score was first reached, median pruner vs none | | >= 40% fewer "
        f"| {b7['epochs_to_best_reduction']:.0%} fewer ({b7m['epochs_to_best']} vs {b7n['epochs_to_best']}) |",
        f"| B8 | training throughput, fp32 | | | {b8['fp32']['examples_per_s']:.1f} examples/s, "
        f"{b8['fp32']['tokens_per_s']:,.0f} tokens/s |",
        f"| B8 | training throughput, bf16 autocast | | | {b8['bf16']['examples_per_s']:.1f} examples/s, "
        f"{b8['bf16']['tokens_per_s']:,.0f} tokens/s ({b8['bf16_speedup']:.2f}x fp32) |",
        *(
            f"| B9 | wall-clock of a {b9['n_trials']}-trial tiny study of {epochs} epochs per trial, 2 workers vs 1 "
            f"({b9['cpus']} cores) | | faster | {w['speedup']:.2f}x ({w['two_workers_s']:.1f} s vs "
            f"{w['one_worker_s']:.1f} s) |"
            for epochs, w in b9["wall_clock_by_epochs"].items()
        ),
        f"| B9 | B1's peak checkpoint bytes with 2 workers | | <= 2 x (last + 1 in flight + best) + study best "
        f"({human_bytes(b9['peak_bound_bytes_two_workers'])}) | {human_bytes(b9['peak_bytes_two_workers'])} "
        f"({'within' if b9['peak_within_bound'] else 'over'} the bound; sampled every 50 ms) |",
    ]
    b10 = results.get("B10_step_overhead")
    if b10:
        rows.append(
            f"| B10 | the loop's own cost per training step over a bare loop (tiny encoder, CPU time of one thread) "
            f"| | <= 2% | {b10['overhead_vs_bare']:+.1%} ({b10['overhead_us_per_step']:+.0f} us on "
            f"{b10['bare_ms_per_step']:.2f} ms steps; median of {b10['repetitions']}) |"
        )
    b11 = results.get("B11_bucket")
    if b11:
        rows += [
            f"| B11 | loop blocked per checkpoint save with `remote.uri` (B2's measure; the upload runs in the "
            f"background writer) | | <= 1% | {b11['blocked_share']:.2%} ({b11['median_save_seconds'] * 1000:.0f} ms "
            f"of {b11['median_epoch_seconds']:.1f} s, median of {b11['saves']}; the first save "
            f"{b11['max_blocked_share']:.2%}) |",
            f"| B11 | upload of a {human_bytes(b11['checkpoint_bytes'])} checkpoint vs its local write (serialize, "
            f"fsync, hash, commit) | | | upload {b11['upload_mb_s']:.0f} MB/s ({b11['upload_seconds']:.2f} s), "
            f"local {b11['local_write_mb_s']:.0f} MB/s ({b11['local_write_seconds']:.2f} s); median of 3 |",
            f"| B11 | B1's study with `remote.uri`: checkpoint bytes in the bucket at the end vs keep-all | "
            f">= 60% less | >= 95% less | {b11['reduction_at_end']:.1%} less "
            f"({human_bytes(b11['bucket_bytes_at_end'])} vs {human_bytes(b11['keep_all_bytes'])}) |",
        ]
    b12 = results.get("B12_winners_curse")
    if b12:
        low, high = b12["test_macro_f1_interval"]
        seeds = b12["test_macro_f1_over_seeds"]
        rows += [
            f"| B12 | the winner's curse: the best trial's {b12['metric']} (of the baseline and {b12['search_trials']} "
            f"search trials) vs its configuration's mean over {b12['seeds']} new seeds | | | "
            f"{b12['search_value']:.4f} vs {b12['confirmed_mean']:.4f} ± {b12['confirmed_std']:.4f} "
            f"(overstated by {b12['winners_curse']:+.4f}) |",
            f"| B12 | test macro-F1 of the answer and its 95% bootstrap interval over {b12['test_posts']} test posts; "
            f"over the {b12['seeds']} seeds | | | {b12['test_macro_f1']:.4f} [{low:.3f}, {high:.3f}] (width "
            f"{b12['test_macro_f1_interval_width']:.3f}); {seeds['mean']:.4f} ± {seeds['std']:.4f} over seeds |",
        ]
    setup = (
        f"Encoder: `{results['encoder']}`. B1: 4 trials x 3 epochs of 4 steps, objective val_criteria_macro_pr_auc, "
        "default retention. B2: 1 trial x 3 full epochs. B3: a 1-trial study killed in epoch 2, then resumed. "
        f"B4: {b4['calls']} calls per repetition, {b4['pause_between_calls_s'] * 1000:.0f} ms apart, against a "
        "local `mlflow server`, stopped for the down case. "
        f"B6: {b6['epochs']} epochs x {b6['repetitions']} repetitions, the three loops in turn (order alternating). "
        f"B7: `hpo=conditional`, {b7['n_trials']} trials x {b7['epochs_per_trial']} epochs on the tiny "
        f"encoder, seed 13. B8: one training epoch per precision on {b8['device']}, median of "
        f"{b8['repetitions']}. B9: `hpo.n_workers=2` vs 1 through the CLI, process start to exit; the peak study "
        f"is B1's with 2 workers. B11: B2's and B1's studies with `remote.uri` on a moto S3 server on this "
        f"machine (`remote.cache_max_mb=0` for B2's). Machine: {results['machine']}. Command: `make bench`."
    )
    gpu_parts = []
    for name, command in (("gpu_smoke", "make gpu-smoke"), ("gpu_check", "make gpu-check")):
        path = REPO / "bench" / f"{name}.md"
        gpu_parts.append(
            path.read_text()
            if path.is_file()
            else f"`{command}`: not run; no CUDA machine was at hand for these measurements.\n"
        )
    return setup + "\n\n" + "\n".join(rows) + "\n\n" + "\n".join(gpu_parts)


BENCHES = {
    "B1": ("B1_checkpoint_storage", b1_storage),
    "B2": ("B2_checkpoint_save", b2_save_time),
    "B3": ("B3_resume", b3_resume),
    "B4": ("B4_tracking", lambda workdir, encoder: b4_tracking(workdir)),
    "B5": ("B5_disk_guard", lambda workdir, encoder: b5_disk_guard(workdir)),
    "B6": ("B6_overhead", lambda workdir, encoder: b6_overhead(workdir, encoder)),
    "B7": ("B7_pruning", b7_pruning),
    "B8": ("B8_throughput", lambda workdir, encoder: b8_throughput(workdir, encoder)),
    "B9": ("B9_workers", b9_workers),
    "B10": ("B10_step_overhead", lambda workdir, encoder: b10_step_overhead(workdir)),
    "B11": ("B11_bucket", b11_bucket),
    "B12": ("B12_winners_curse", b12_winners_curse),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny encoder: checks the harness, numbers mean little")
    parser.add_argument("--out", type=Path, default=REPO / "bench", help="where results.json/results.md go")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these (e.g. B4)")
    args = parser.parse_args()
    encoder = ["model=tiny"] if args.quick else []
    previous = args.out / "results.json"
    results = json.loads(previous.read_text()) if args.only and previous.exists() else {}
    with tempfile.TemporaryDirectory(prefix="redsm5-bench-") as tmp:
        results["encoder"] = "tiny-random" if args.quick else "bundled:all-MiniLM-L6-v2"
        results["machine"] = machine()
        for bench_id in args.only or sorted(BENCHES):
            key, run = BENCHES[bench_id]
            results[key] = run(Path(tmp), encoder)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    sys.stdout.write(markdown(results))


if __name__ == "__main__":
    main()
