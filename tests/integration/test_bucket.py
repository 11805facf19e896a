"""A study whose checkpoints and files live in a bucket (a real S3-compatible server, moto, through s3fs): the
bucket ends with the study best's checkpoints and the study's files only, the local disk holds no more than
the cache budget allows, any machine with an empty experiments directory reads the study, a preempted
machine's study resumes on another one, and a bucket that cannot be used stops before any training."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from tests.conftest import CONFIG_DIR
from tests.helpers.mlflow_server import MlflowServer
from tests.helpers.s3_server import S3, s3  # noqa: F401 (the fixture)
from tests.helpers.study_cli import STUDY_OVERRIDES
from tests.integration.test_after_study import read_jsonl, write_posts
from tests.integration.test_signals import wait_for
from tests.integration.test_workers import postgres_url  # noqa: F401 (the fixture)


def command(root: Path, s3: S3, tracking: Path | str, *args: str, bucket: str | None = None) -> list[str]:  # noqa: F811
    """``tracking``: a shared SQLite file (both machines reach it) or a tracking server's URL; ``bucket``:
    another ``remote.uri`` than the server's bucket."""
    uri = tracking if isinstance(tracking, str) else f"sqlite:///{tracking}"
    where = [f"experiments_dir={root}", f"remote.uri={bucket or s3.uri}", f"tracking.uri={uri}"]
    return [sys.executable, "-m", "redsm5_hpo", *args, *where, "--config-dir", str(CONFIG_DIR)]


def run(
    root: Path,
    s3: S3,  # noqa: F811
    tracking: Path | str,
    *args: str,
    bucket: str | None = None,
) -> subprocess.CompletedProcess:
    quiet = ["--no-progress"] if args[0] in ("tune", "resume") else []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [*command(root, s3, tracking, *args, bucket=bucket), *quiet],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_tune(root: Path, s3: S3, tracking: Path | str, *overrides: str) -> subprocess.Popen:  # noqa: F811
    """``tune`` in the background, its output (stdout and stderr) line by line as it comes."""
    return subprocess.Popen(
        [*command(root, s3, tracking, "tune", *overrides), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def checkpoint_bytes(root: Path) -> int:
    total = 0
    for path in root.glob("trial_*/checkpoints/**/*"):
        with contextlib.suppress(FileNotFoundError):  # evicted meanwhile
            total += path.stat().st_size if path.is_file() else 0
    return total


def once_per_step(tracking: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tracking}")
    for run in client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id]):
        for key in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), f"{run.info.run_name}/{key} logged twice: {steps}"


def test_the_bucket_keeps_the_study_and_any_machine_reads_it(s3, tmp_path) -> None:  # noqa: F811
    root, tracking = tmp_path / "a" / "experiments", tmp_path / "mlflow.db"
    process = start_tune(root, s3, tracking, *STUDY_OVERRIDES, "remote.cache_max_mb=0")
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], checkpoint_bytes(root))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = process.communicate(timeout=300)
    sampler.join()
    assert process.returncode == 0, output[-3000:]

    (report_path,) = root.glob("study_*/study_report.json")
    report = json.loads(report_path.read_text())
    study_dir = report_path.parent.name
    best = f"trial_{report['best_trial_id']}"
    keys = s3.objects()
    kept = {Path(r).name for r in report["checkpoint_references"]}
    checkpoint_keys = [k for k in keys if "/checkpoints/" in k]
    assert {k.split("/")[2] for k in checkpoint_keys} == kept  # the study best's checkpoints ...
    assert {k.split("/")[0] for k in checkpoint_keys} == {best}  # ... and no other trial's: no orphans
    assert {f"{study_dir}/study.json", f"{study_dir}/study_report.json", f"{study_dir}/optuna.db"} <= set(keys)
    trials = {k.split("/")[0] for k in keys if k.startswith("trial_")}
    assert {f"{t}/config.yaml" for t in trials} | {f"{t}/evaluation_report.json" for t in trials} <= set(keys)
    assert not any(k.endswith((".lock", ".claim.lock", ".in_bucket")) for k in keys)

    # the local disk: at most the budget (0) plus the running trial's resume point and one write in flight
    saved = [
        float(n) * {"KB": 2**10, "MB": 2**20}[u]
        for n, u in re.findall(r"saved checkpoint \S+ \(([\d.]+) (KB|MB)\)", output)
    ]
    full = max(saved) + 8 * 2**10  # the largest checkpoint, a resume point, with its manifest and marker
    assert 0 < peak[0] <= 2 * full, (peak[0], full)
    assert checkpoint_bytes(root) == 0  # after the study: everything is in the bucket, the cache budget is 0

    # another machine: an empty experiments directory, the bucket and the tracking server
    other = tmp_path / "b" / "experiments"
    for args in (("report",), ("verify",), ("status",)):
        result = run(other, s3, tracking, *args)
        assert result.returncode == 0, (args, result.stdout[-2000:] + result.stderr[-2000:])
    assert "OK" in run(other, s3, tracking, "verify").stdout
    s3.fs().rm(f"{s3.bucket}/exp/{study_dir}/study_report.json")
    assert run(other, s3, tracking, "report").returncode == 0  # a report rewritten anywhere reaches the bucket
    assert f"{study_dir}/study_report.json" in s3.objects()
    assert json.loads((other / study_dir / "study_report.json").read_text())["test_metrics"] == report["test_metrics"]
    write_posts(tmp_path / "posts.csv")
    predictions = {}
    for name, where in (("here", root), ("there", other)):
        out = tmp_path / f"{name}.jsonl"
        result = run(where, s3, tracking, "predict", str(tmp_path / "posts.csv"), "--output", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
        predictions[name] = read_jsonl(out)
    assert predictions["here"] == predictions["there"]
    exported = run(other, s3, tracking, "export", "--output", str(tmp_path / "model"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    cleanup = run(other, s3, tracking, "cleanup", "--min-age-hours", "0")  # a finished study leaves no orphan
    assert cleanup.returncode == 0 and "0 orphan(s)" in cleanup.stdout, cleanup.stdout + cleanup.stderr


def test_a_preempted_study_resumes_from_the_bucket_on_a_new_machine(s3, uninterrupted, tmp_path) -> None:  # noqa: F811
    """SIGTERM (a spot VM's notice) mid-trial: exit 143 with the newest checkpoint in the bucket; the machine's
    disk is then lost, and `resume` on another machine finishes the study with the uninterrupted report."""
    root, tracking = tmp_path / "a" / "experiments", tmp_path / "mlflow.db"
    process = start_tune(root, s3, tracking, *STUDY_OVERRIDES)
    wait_for(process, "checkpoint in the bucket")  # the first trial's epoch 1; epoch 2 is training
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=180)
    assert process.returncode == 143, rest[-3000:]
    assert "newest resume point in the bucket: s3://" in rest
    (study_json,) = root.glob("study_*/study.json")
    study_id = study_json.parent.name.removeprefix("study_")
    newest = rest.split("newest resume point in the bucket: ")[1].split()[0]
    assert newest.removeprefix(f"{s3.uri}/") + "/manifest.json" in s3.objects()
    subprocess.run(["rm", "-rf", str(root)], check=True)  # the preempted VM's disk is gone

    other = tmp_path / "b" / "experiments"
    resumed = run(other, s3, tracking, "resume", "--study", study_id)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resumes after epoch" in resumed.stdout  # from the bucket's checkpoint, not from scratch
    report = json.loads((other / f"study_{study_id}" / "study_report.json").read_text())
    assert report["test_metrics"] == uninterrupted[0]["test_metrics"]
    assert not list(root.glob("*_*"))  # the new machine kept to its own directory (no trial_*, study_*)
    assert report["trials"] == {"requested": 2, "completed": 2, "pruned": 0, "failed": 0}
    once_per_step(tracking)


def test_a_bucket_that_cannot_be_used_stops_before_training(s3, tmp_path) -> None:  # noqa: F811
    root, tracking = tmp_path / "experiments", tmp_path / "mlflow.db"
    missing = run(root, s3, tracking, "tune", *STUDY_OVERRIDES, bucket="s3://no-such-bucket/exp")
    assert missing.returncode == 2, missing.stdout[-2000:] + missing.stderr[-2000:]
    assert "error: s3://no-such-bucket/exp: the bucket does not exist" in missing.stderr
    assert "Traceback" not in missing.stdout + missing.stderr
    assert not list(root.glob("trial_*"))
    secret = run(root, s3, tracking, "tune", *STUDY_OVERRIDES, "+remote.options.secret=abc")
    assert secret.returncode == 2 and "would keep a credential in the configuration" in secret.stderr


def test_two_machines_sharing_only_a_database_and_a_bucket(s3, postgres_url, uninterrupted, tmp_path) -> None:  # noqa: F811
    """Machine A dies (SIGKILL) mid-trial; machine B, whose experiments directory shares nothing with A's,
    continues that trial from A's newest checkpoint in the bucket, in the same MLflow run, and the study
    ends with the report of a one-machine study with the same seed."""
    tracking = tmp_path / "mlflow.db"
    name = f"study_{uuid.uuid4().hex}"
    shared = [*STUDY_OVERRIDES, f"hpo.storage={postgres_url}", f"hpo.study_name={name}"]
    shared += ["hpo.heartbeat_interval_s=1", "hpo.stale_after_s=3"]
    a, b = tmp_path / "a" / "experiments", tmp_path / "b" / "experiments"
    first = start_tune(a, s3, tracking, *shared)
    wait_for(first, "checkpoint in the bucket")
    first.kill()  # machine A is gone, its disk with it
    first.communicate(timeout=60)
    subprocess.run(["rm", "-rf", str(a)], check=True)
    time.sleep(4)  # longer than hpo.stale_after_s since its last heartbeat

    second = run(b, s3, tracking, "tune", *shared)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "trial 0 was interrupted; it resumes from its newest checkpoint" in second.stdout
    assert "downloaded checkpoint s3://" in second.stdout and "resumes after epoch" in second.stdout
    interrupted, *rest = optuna.load_study(study_name=name, storage=postgres_url).trials
    continuation = next(t for t in rest if t.user_attrs.get("resume_of") == 0)
    assert continuation.user_attrs["trial_id"] == interrupted.user_attrs["trial_id"]
    assert continuation.user_attrs["mlflow_run_id"] == interrupted.user_attrs["mlflow_run_id"]
    report = json.loads((b / name / "study_report.json").read_text())
    assert report["test_metrics"] == uninterrupted[0]["test_metrics"]
    assert not list(a.glob("*_*"))  # B kept to its own directory, wherever A had put the trial
    record = json.loads(s3.fs().cat(f"{s3.bucket}/exp/{name}/study.json"))
    assert ":***@" in record["storage"] and postgres_url not in json.dumps(record)  # no password in the bucket
    assert report["trials"] == {"requested": 2, "completed": 2, "pruned": 0, "failed": 0}
    once_per_step(tracking)


def test_a_bucket_outage_mid_study_loses_nothing_and_uploads_catch_up(s3, uninterrupted, tmp_path) -> None:  # noqa: F811
    """The S3 server stopped for 20 s while the study trains: training goes on with local checkpoints, the
    uploads wait and catch up, the report is written once the bucket holds the best trial's checkpoints."""
    root, tracking = tmp_path / "experiments", tmp_path / "mlflow.db"
    overrides = [*STUDY_OVERRIDES, "remote.retry_s=1", "remote.flush_timeout_s=90"]
    process = start_tune(root, s3, tracking, *overrides)
    lines: list[str] = []
    first_upload, outage_seen = threading.Event(), threading.Event()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "checkpoint in the bucket" in line:
                first_upload.set()
            if "wait for upload" in line or "wait for the next upload" in line:
                outage_seen.set()

    reader = threading.Thread(target=drain)
    reader.start()
    assert first_upload.wait(180), "".join(lines)[-3000:]
    s3.stop()
    stopped = time.monotonic()
    assert outage_seen.wait(120), "".join(lines)[-3000:]  # training went on and noticed
    time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
    s3.start()
    process.wait(timeout=300)
    reader.join()
    output = "".join(lines)
    assert process.returncode == 0, output[-3000:]
    (report_path,) = root.glob("study_*/study_report.json")
    report = json.loads(report_path.read_text())
    assert report["test_metrics"] == uninterrupted[0]["test_metrics"]
    best, kept = f"trial_{report['best_trial_id']}", {Path(r).name for r in report["checkpoint_references"]}
    checkpoint_objects = [k for k in s3.objects() if "/checkpoints/" in k]
    assert {(k.split("/")[0], k.split("/")[2]) for k in checkpoint_objects} == {(best, name) for name in kept}
    assert f"{report_path.parent.name}/study_report.json" in s3.objects()
    once_per_step(tracking)


def test_mlflow_artifacts_can_go_to_the_same_bucket(s3, tmp_path) -> None:  # noqa: F811
    """A tracking server started with ``--artifacts-destination s3://...`` stores the artifacts the study
    logs (its report, plots, the trials' reports) in the bucket; the client needs nothing more."""
    server = MlflowServer(tmp_path / "mlflow", artifacts_destination=f"s3://{s3.bucket}/mlflow-artifacts")
    server.start()
    try:
        result = run(tmp_path / "experiments", s3, server.uri, "tune", *STUDY_OVERRIDES, "train.epochs=1")
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    artifacts = [str(p) for p in s3.fs().find(f"{s3.bucket}/mlflow-artifacts")]
    names = {Path(p).name for p in artifacts}
    assert {"study_report.json", "evaluation_report.json", "optimization_history.png"} <= names, names
