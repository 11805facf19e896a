"""After the study, through the real CLI: predict on new posts with the study's best model, export it as a
Hugging Face folder that transformers and predict load (same probabilities), and status on a finished,
a running and a killed study."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from redsm5_hpo.cli.main import main
from tests.conftest import CONFIG_DIR
from tests.integration.test_tracking_outage import Cli

SECRET_PHRASE = "zebracorn marmalade"
"""In a post: it must reach the predictions, never a log line."""


def write_posts(path: Path) -> list[dict[str, str]]:
    long_text = " ".join(f"Day {i}: I could not sleep again and I feel worthless." for i in range(120))
    posts = [
        {"post_id": "short", "text": f"I feel empty every day. Nothing is fun anymore. {SECRET_PHRASE}."},
        {"post_id": "happy", "text": "Went hiking with friends today, it was great!"},
        {"post_id": "long", "text": long_text},  # far past max_length: read in windows, as in training
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["post_id", "text"])
        writer.writeheader()
        writer.writerows(posts)
    return posts


def run(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "redsm5_hpo", *args, "--config-dir", str(CONFIG_DIR)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )


def read_jsonl(path: Path) -> dict[str, dict]:
    return {row["post_id"]: row for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def test_predict_then_export_give_the_same_model(uninterrupted_root, tmp_path) -> None:
    root = uninterrupted_root
    posts = write_posts(tmp_path / "posts.csv")
    out_csv = tmp_path / "predictions.csv"
    result = run("predict", str(tmp_path / "posts.csv"), f"experiments_dir={root}", "--output", str(out_csv))
    assert result.returncode == 0, result.stderr[-3000:]
    assert SECRET_PHRASE not in result.stdout + result.stderr  # post text is never logged
    csv.field_size_limit(2**31 - 1)  # the random tiny model marks much of the long post as evidence
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert [r["post_id"] for r in rows] == ["short", "happy", "long"]
    report = json.loads(next(root.glob("study_*/study_report.json")).read_text())
    criteria = report["thresholds"]["criteria"]
    texts = {p["post_id"]: p["text"] for p in posts}
    for row in rows:
        for symptom, threshold in criteria.items():
            probability = float(row[f"prob_{symptom}"])
            assert 0.0 <= probability <= 1.0
            assert int(row[symptom]) == int(probability >= threshold)  # decisions at the calibrated thresholds
        for span in json.loads(row["evidence"]):
            text = texts[row["post_id"]]
            assert 0 <= span["start"] < span["end"] <= len(text) and span["score"] >= report["thresholds"]["evidence"]
            assert text[span["start"] : span["end"]] in text and span["sentence"] in text
    assert any(s["start"] > 2000 for s in json.loads(rows[2]["evidence"])) or rows[2]["evidence"] == "[]"

    exported = tmp_path / "model"
    result = run("export", f"experiments_dir={root}", "--output", str(exported))
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(exported)  # plain transformers loads the encoder from the root
    assert encoder.config.hidden_size == 32
    card = (exported / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers" and "mental-health" in front["tags"]
    assert "pipeline_tag" not in front  # a plain pipeline() would give a random head's outputs
    assert "base_model" not in front  # the tiny test encoder is no hub model
    assert "bundled **synthetic** sample" in card and "English Reddit posts" not in card  # the data it saw
    assert str(root) not in card and str(tmp_path) not in card and "/tmp" not in card  # no local paths
    assert "not a diagnostic tool" in card and f"{report['test_metrics']['test_criteria_macro_f1']:.4f}" in card
    assert report["dataset"]["revision"] in card

    from_export = tmp_path / "export.jsonl"
    result = run("predict", str(tmp_path / "posts.csv"), "--checkpoint", str(exported), "--output", str(from_export))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MISSING" not in result.stdout + result.stderr  # the unused pooler is no news
    (checkpoint,) = report["checkpoint_references"]
    from_checkpoint = tmp_path / "checkpoint.jsonl"
    result = run("predict", str(tmp_path / "posts.csv"), "--checkpoint", checkpoint, "--output", str(from_checkpoint))
    assert result.returncode == 0, result.stderr[-3000:]
    by_export, by_checkpoint = read_jsonl(from_export), read_jsonl(from_checkpoint)
    for row in rows:
        expected = {s: float(row[f"prob_{s}"]) for s in criteria}
        assert by_export[row["post_id"]]["probabilities"] == expected
        assert by_checkpoint[row["post_id"]]["probabilities"] == expected
        assert by_export[row["post_id"]]["evidence"] == json.loads(row["evidence"])

    renamed = tmp_path / "renamed.jsonl"  # a posts file that names its columns otherwise
    renamed.write_text("".join(json.dumps({"id": p["post_id"], "body": p["text"]}) + "\n" for p in posts))
    by_names = tmp_path / "by_names.jsonl"
    args = ["--id-column", "id", "--text-column", "body", "--checkpoint", checkpoint, "--output", str(by_names)]
    result = run("predict", str(renamed), *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {k: v["probabilities"] for k, v in read_jsonl(by_names).items()} == {
        k: v["probabilities"] for k, v in by_checkpoint.items()
    }


def test_status_of_a_finished_a_running_and_a_killed_study(uninterrupted_root, tmp_path) -> None:
    finished = run("status", f"experiments_dir={uninterrupted_root}")
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert ": finished" in finished.stdout and "trials: 2/2 done (2 completed" in finished.stdout

    root = tmp_path / "experiments"
    long_trials = [
        "model=tiny",
        "train.batch_size=16",
        "train.epochs=200",
        "hpo.n_trials=2",
        "hpo.baseline_trial=false",
    ]  # killed long before
    study = Cli(root, "tune", *long_trials, "--no-progress")
    study.wait_for("epoch 1:")  # the first trial finished its first epoch
    running = run("status", f"experiments_dir={root}")
    assert running.returncode == 0, running.stderr[-2000:]
    assert ": running" in running.stdout
    assert "trials: 0/2 done" in running.stdout and "1 running, 1 queued" in running.stdout
    line = r"trial 1 \([0-9a-f]{8}, running\): epoch \d+/200: train_loss="  # its stage, said once
    assert re.search(line, running.stdout), running.stdout
    assert "disk guard: OK" in running.stdout and "tracking journal:" in running.stdout
    assert re.search(r"best so far: .*, ETA (\d+h\d{2}m|\d+m\d{2}s)$", running.stdout, re.M), running.stdout  # epochs
    study.process.send_signal(signal.SIGKILL)
    study.finish()
    killed = run("status", f"experiments_dir={root}")
    assert ": stopped (resumable: `redsm5-hpo resume --study" in killed.stdout
    assert "interrupted" in killed.stdout


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("no_text.csv", b"post_id,body\n1,hello\n", "no text column (columns found: post_id, body)"),
        ("no_text_hint.csv", b"post_id,body\n1,hello\n", "or name yours with --id-column / --text-column"),
        ("empty.csv", b"post_id,text\n1,hello\n2,   \n", "row 3 (post_id 2): text is empty"),
        ("latin1.csv", "post_id,text\n1,caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
        ("number.jsonl", b'{"post_id": "a", "text": 5}\n', "line 1 (post_id a): text is int, not text"),
        ("broken.jsonl", b'{"post_id": "a", "text": "x"\n', "line 1: not JSON"),
    ],
)
def test_bad_posts_get_one_clear_error_and_no_traceback(tmp_path, capsys, name, content, expected) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    argv = ["predict", str(path), "--output", str(tmp_path / "out.csv"), f"experiments_dir={tmp_path}"]
    assert main([*argv, "--config-dir", str(CONFIG_DIR)]) == 2  # before any model is loaded
    err = capsys.readouterr().err
    assert expected in err and str(path) in err
    assert "Traceback" not in err and not (tmp_path / "out.csv").exists()


def test_mlflow_opens_on_a_model_training_experiment_with_its_dataset(uninterrupted_root) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{uninterrupted_root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("redsm5-hpo")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the runs table, not traces
    report = json.loads(next(uninterrupted_root.glob("study_*/study_report.json")).read_text())
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # the study and its two trials
    for run in runs:
        (dataset_input,) = run.inputs.dataset_inputs
        dataset = dataset_input.dataset
        assert (dataset.name, dataset.source_type) == ("redsm5-sample", "local")
        assert json.loads(dataset.source) == {"uri": "sample", "revision": report["dataset"]["revision"]}
        assert json.loads(dataset.profile)["splits"] == report["dataset"]["splits"]
        assert report["dataset"]["revision"].removeprefix("sha256:").startswith(dataset.digest)
        assert {t.key: t.value for t in dataset_input.tags} == {"mlflow.data.context": "training"}


def test_progress_bars_nest_trials_epochs_and_batches_on_a_terminal(tmp_path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    main_end, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))  # a 160-column terminal
    command = [sys.executable, "-m", "redsm5_hpo", "tune", "model=tiny", "train.epochs=2", "train.batch_size=32"]
    command += [
        "hpo.n_trials=1",
        "hpo.baseline_trial=false",
        f"experiments_dir={tmp_path}",
        "--config-dir",
        str(CONFIG_DIR),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main_end, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=300) == 0, output.decode(errors="replace")[-3000:]
    text = output.decode(errors="replace")
    assert "trials:" in text and "epochs:" in text and "epoch 1/2:" in text and "batch/s" in text


TOKEN = "hf_" + "Zq7x" * 8
"""A Hugging Face token written into a config value (a token check command that carries it)."""


def test_a_token_in_a_config_value_stays_in_the_files_resume_reads_and_only_there(tmp_path) -> None:
    import stat

    root = tmp_path / "experiments"
    overrides = ["model=tiny", "train.epochs=1", "train.batch_size=32", "hpo.n_trials=1", "hpo.baseline_trial=false"]
    study = run("tune", *overrides, f"hub.token_check=command:true {TOKEN}", f"experiments_dir={root}", "--no-progress")
    assert study.returncode == 0, study.stderr[-3000:]
    exported = run("export", f"experiments_dir={root}", "--output", str(tmp_path / "model"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert TOKEN not in study.stdout + study.stderr + exported.stdout + exported.stderr
    holders = sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()
    )
    (trial,) = root.glob("trial_*")
    (study_dir,) = root.glob("study_*")
    expected = [str(p.relative_to(tmp_path)) for p in (study_dir / "study.json", trial / "config.yaml")]
    assert holders == sorted(expected)  # reports, MLflow store and artifacts, logs, journal, export: masked
    for path in holders:
        assert stat.S_IMODE((tmp_path / path).stat().st_mode) == 0o600, path
    report = json.loads((study_dir / "study_report.json").read_text())
    assert report["config"]["hub"]["token_check"] == "command:true ***"


def test_system_metrics_reach_the_trial_run_when_asked_for(tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    root = tmp_path / "experiments"
    overrides = ["model=tiny", "train.epochs=3", "train.batch_size=16", f"experiments_dir={root}"]
    result = run("train", *overrides, "tracking.system_metrics=true", "tracking.system_metrics_interval_s=0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (trial_run,) = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    system = {k for k in trial_run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
