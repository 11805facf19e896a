"""The journaling tracker against real MLflow stores: a SQLite store that is up, and a server address
where nothing listens (a real outage)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from redsm5_hpo.tracking.buffered import (
    LOCAL_PREFIX,
    BufferSettings,
    JournalingTracker,
)
from redsm5_hpo.tracking.journal import Pending, expand_metrics, pending_in
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker, default_tracking_uri
from tests.helpers.mlflow_server import free_port


def sqlite_store(root: Path):
    return lambda: MLflowTracker(default_tracking_uri(root), "exp")


def unreachable():
    return lambda: MLflowTracker(f"http://127.0.0.1:{free_port()}", "exp")


def test_metrics_arrive_once_with_their_timestamps(tmp_path) -> None:
    tracker = JournalingTracker(sqlite_store(tmp_path), tmp_path / "journal")
    run = tracker.start_run("r", {"k": "v"})
    assert not run.startswith(LOCAL_PREFIX)
    for step in range(1, 4):
        tracker.log_metrics(run, {"loss": 1.0 / step, "f1": 0.1 * step}, step)
    assert tracker.flush(30)
    points = tracker.metric_points(run)
    assert sorted((m, s) for m, s, _ in points) == sorted((m, s) for m in ("loss", "f1") for s in (1, 2, 3))
    assert tracker.close() == 0
    assert pending_in(tmp_path / "journal") == 0


def test_an_outage_gets_local_run_ids_that_the_next_process_creates_and_fills(tmp_path, caplog) -> None:
    journal = tmp_path / "journal"
    down = JournalingTracker(unreachable(), journal, BufferSettings(backoff_s=(0.1,)))
    with caplog.at_level(logging.WARNING, logger="redsm5_hpo"):
        run = down.start_run("trial_x", {"trial_id": "x"})
        down.log_params(run, {"train": {"lr": 0.1}})
        for step in (1, 2):
            down.log_metrics(run, {"loss": float(step)}, step)
        down.end_run(run)
    assert run.startswith(LOCAL_PREFIX)
    assert down.logged_metric_steps(run) == {("loss", 1), ("loss", 2)}
    assert "unreachable" in caplog.text
    assert down.close(timeout_s=0.5) == 5
    up = JournalingTracker(sqlite_store(tmp_path), journal)
    assert up.flush(30)
    real = up.resolve(run)
    assert not real.startswith(LOCAL_PREFIX)
    assert sorted((m, s) for m, s, _ in up.metric_points(run)) == [("loss", 1), ("loss", 2)]
    mlflow_run = up.connection.get().client.get_run(real)
    assert mlflow_run.data.params == {"train.lr": "0.1"} and mlflow_run.info.status == "FINISHED"
    up.close()
    assert pending_in(journal) == 0


def test_records_sent_but_not_acknowledged_are_not_sent_twice(tmp_path) -> None:
    journal = tmp_path / "journal"
    first = JournalingTracker(sqlite_store(tmp_path), journal)
    run = first.start_run("r", {})
    first.log_metrics(run, {"loss": 0.5, "f1": 0.25}, 1)
    assert first.flush(30)
    segment = first.journal.active
    with first.sender.cond:  # as if the process died between the upload and its acknowledgement
        first.sender.closed = True
        first.sender.stopping = True
        for s in first.journal.segments:
            os.close(s.fd)
    first.sender.thread.join(5)
    segment.ack_path.write_text("0")
    second = JournalingTracker(sqlite_store(tmp_path), journal)
    assert second.flush(30)
    assert sorted((m, s) for m, s, _ in second.metric_points(run)) == [("f1", 1), ("loss", 1)]
    assert second.skipped_duplicates == 2
    second.close()


def values(tracker: JournalingTracker, run: str, key: str) -> dict[int, list[float]]:
    client = tracker.connection.get().client
    history: dict[int, list[float]] = {}
    for m in client.get_metric_history(tracker.resolve(run), key):
        history.setdefault(m.step, []).append(m.value)
    return history


def test_a_metric_logged_again_by_a_restart_reaches_the_tracker_once(tmp_path) -> None:
    journal = tmp_path / "journal"
    first = JournalingTracker(sqlite_store(tmp_path), journal)
    run = first.start_run("r", {})
    first.log_metrics(run, {"loss": 0.5}, 0)
    first.log_metrics(run, {"loss": 0.4, "f1": 0.1}, 1)
    first.close()
    time.sleep(0.01)  # a later timestamp: only (run, metric, step) says it is the same record
    second = JournalingTracker(sqlite_store(tmp_path), journal)  # a restarted process, same run
    second.reopen_run(run)
    second.log_metrics(run, {"loss": 0.5}, 0)
    second.log_metrics(run, {"loss": 0.9, "f1": 0.1}, 1)  # the first value logged at a step stays
    second.log_metrics(run, {"loss": 0.3, "f1": 0.2}, 2)
    assert second.flush(30)
    assert values(second, run, "loss") == {0: [0.5], 1: [0.4], 2: [0.3]}
    assert values(second, run, "f1") == {1: [0.1], 2: [0.2]}
    assert second.skipped_duplicates == 3
    second.close()


def test_a_metric_logged_again_during_an_outage_is_delivered_once_after_it(tmp_path) -> None:
    """A resumed trial cannot read what its run holds while the tracker is down, so it logs its set-up
    metrics again; the process that delivers the journal later skips them."""
    journal = tmp_path / "journal"
    first = JournalingTracker(sqlite_store(tmp_path), journal)
    run = first.start_run("trial", {})
    first.log_metrics(run, {"train_evidence_truncation_loss": 0.0, "val_evidence_truncation_loss": 0.0}, 0)
    first.close()
    down = JournalingTracker(unreachable(), journal, BufferSettings(backoff_s=(0.1,)))
    assert down.logged_metric_steps(run) == set()  # it cannot tell what the run holds
    down.log_metrics(run, {"train_evidence_truncation_loss": 0.0, "val_evidence_truncation_loss": 0.0}, 0)
    down.log_metrics(run, {"train_loss": 1.0}, 1)
    assert down.close(timeout_s=0.2) == 2
    up = JournalingTracker(sqlite_store(tmp_path), journal)  # adopts the journal and replays it
    assert up.flush(30)
    assert sorted((m, s) for m, s, _ in up.metric_points(run)) == [
        ("train_evidence_truncation_loss", 0),
        ("train_loss", 1),
        ("val_evidence_truncation_loss", 0),
    ]
    up.close()
    assert pending_in(journal) == 0


def test_a_record_the_tracker_refuses_is_kept_aside_and_the_rest_goes_on(tmp_path, caplog) -> None:
    tracker = JournalingTracker(sqlite_store(tmp_path), tmp_path / "journal")
    run = tracker.start_run("r", {})
    tracker.log_params(run, {"lr": 0.1})
    tracker.log_params(run, {"lr": 0.2})  # MLflow refuses to change a param
    tracker.log_metrics(run, {"loss": 1.0}, 1)
    with caplog.at_level(logging.ERROR, logger="redsm5_hpo"):
        assert tracker.flush(30)
    tracker.close()
    rejected = [json.loads(line) for line in (tmp_path / "journal" / "rejected.jsonl").read_text().splitlines()]
    assert rejected[0]["params"] == {"lr": "0.2"} and rejected[0]["rejected_because"]
    assert "refused" in caplog.text
    assert [(m, s) for m, s, _ in tracker.metric_points(run)] == [("loss", 1)]


def test_a_growing_journal_warns_and_keeps_everything(tmp_path, caplog) -> None:
    tracker = JournalingTracker(unreachable(), tmp_path / "journal", BufferSettings(warn_bytes=2000, backoff_s=(5,)))
    with caplog.at_level(logging.WARNING, logger="redsm5_hpo"):
        for step in range(40):
            tracker.log_metrics("run", {"loss": 0.1, "f1": 0.2}, step)
    assert "not yet confirmed" in caplog.text
    assert tracker.close(timeout_s=0) == 40  # one journal line per log call
    assert pending_in(tmp_path / "journal") == 40
    lines = [json.loads(x) for p in (tmp_path / "journal").glob("*.jsonl") for x in p.read_text().splitlines()]
    assert sorted((m["metric"], m["step"]) for line in lines for m in expand_metrics(line)) == sorted(
        (name, step) for step in range(40) for name in ("loss", "f1")
    )


def test_secrets_never_reach_the_journal(tmp_path) -> None:
    tracker = JournalingTracker(unreachable(), tmp_path / "journal", BufferSettings(backoff_s=(5,)))
    secret = "hf_" + "A1b2C3d4E5" * 3
    run = tracker.start_run("r", {"note": secret})
    tracker.log_params(run, {"tracking": {"uri": "https://bob:hunter2@mlflow.example.com"}})
    tracker.set_tags(run, {"token": f"Bearer {secret}"})
    tracker.close(timeout_s=0)
    text = "".join(p.read_text() for p in (tmp_path / "journal").glob("*.jsonl"))
    assert secret not in text and "hunter2" not in text


def pending(entries: list[dict]) -> list[Pending]:
    return [Pending(None, i, e) for i, e in enumerate(entries)]  # type: ignore[arg-type]


def test_the_log_call_only_writes_and_the_sender_fsyncs_within_the_window(tmp_path) -> None:
    tracker = JournalingTracker(
        unreachable(), tmp_path / "journal", BufferSettings(backoff_s=(5,), sync_interval_s=0.05)
    )
    tracker.log_metrics("run", {"loss": 0.1}, 1)
    assert tracker.journal.unsynced_since is not None  # written, not yet fsynced: the call did not wait
    deadline = time.monotonic() + 5
    while tracker.journal.unsynced_since is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tracker.journal.unsynced_since is None  # the sender's group commit
    tracker.close(0)


def test_journal_sync_zero_fsyncs_inside_the_call(tmp_path) -> None:
    tracker = JournalingTracker(unreachable(), tmp_path / "journal", BufferSettings(backoff_s=(5,), sync_interval_s=0))
    tracker.log_metrics("run", {"loss": 0.1}, 1)
    assert tracker.journal.unsynced_since is None
    tracker.close(0)


def test_a_process_killed_right_after_its_log_calls_loses_nothing(tmp_path) -> None:
    """No fsync happened (the group commit is an hour away): what was written is in the kernel's hands."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from redsm5_hpo.tracking.buffered import BufferSettings, JournalingTracker
        from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker
        connect = lambda: MLflowTracker("http://127.0.0.1:{free_port()}", "exp")
        tracker = JournalingTracker(connect, {str(tmp_path / "journal")!r}, BufferSettings(sync_interval_s=3600))
        for step in range(1, 51):
            tracker.log_metrics("run", {{"loss": 1.0 / step, "f1": step / 100}}, step)
        assert tracker.journal.unsynced_since is not None
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    lines = [json.loads(x) for p in (tmp_path / "journal").glob("*.jsonl") for x in p.read_text().splitlines()]
    points = sorted((m["metric"], m["step"], m["value"]) for line in lines for m in expand_metrics(line))
    assert points == sorted([("loss", s, 1.0 / s) for s in range(1, 51)] + [("f1", s, s / 100) for s in range(1, 51)])
