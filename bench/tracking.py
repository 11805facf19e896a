"""B4 tracking: latency of a metric log call as the loop makes it, tracker up and tracker down, and the
journal's replay throughput once the tracker is back. A real ``mlflow server`` on 127.0.0.1.

Two references in the same harness: the same call with an fsync inside it (``journal_sync_s=0``, what
every call cost before the group commit), and the floor of this machine: encoding the same metrics to
JSON and nothing else, which is part of any journaled call."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from redsm5_hpo.tracking.buffered import BufferSettings, JournalingTracker
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.mlflow_server import MlflowServer

METRICS_PER_CALL = 20
"""About what one epoch logs (train loss, learning rates, every validation metric)."""


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


PAUSE_S = 0.02
"""Time between calls: the loop trains between two log calls (an epoch, in practice far longer)."""


def _timed_calls(
    tracker: JournalingTracker | MLflowTracker, run_id: str, calls: int, pause_s: float = PAUSE_S
) -> list[float]:
    return _timed(lambda step, metrics: tracker.log_metrics(run_id, metrics, step), calls, pause_s)


def _timed(call: Callable[[int, dict[str, float]], object], calls: int, pause_s: float = PAUSE_S) -> list[float]:
    latencies = []
    for step in range(calls):
        time.sleep(pause_s)
        metrics = {f"m{i}": step * 0.001 + i for i in range(METRICS_PER_CALL)}
        started = time.perf_counter()
        call(step, metrics)
        latencies.append(time.perf_counter() - started)
    return latencies


def b4_tracking(workdir: Path, calls: int = 300, repetitions: int = 3) -> dict:
    server = MlflowServer(workdir / "b4_server")
    server.start()
    connect = lambda: MLflowTracker(server.uri, "bench")  # noqa: E731
    with JournalingTracker(connect, workdir / "b4_warmup") as warmup:  # a fresh server's first seconds use the CPU
        _timed_calls(warmup, warmup.start_run("warmup", {}), calls)
    up, burst, down, direct, fsynced, floor, replay_rates = [], [], [], [], [], [], []
    encode = json.JSONEncoder(separators=(",", ":")).encode
    try:
        for rep in range(repetitions):  # tracker up (and warmed up)
            with JournalingTracker(connect, workdir / f"b4_up_{rep}") as tracker:
                up.append(p95(_timed_calls(tracker, tracker.start_run(f"up_{rep}", {}), calls)))
                burst.append(p95(_timed_calls(tracker, tracker.start_run(f"burst_{rep}", {}), calls, pause_s=0)))
                assert tracker.flush(300)
            settings = BufferSettings(sync_interval_s=0)
            with JournalingTracker(connect, workdir / f"b4_fsync_{rep}", settings) as tracker:
                fsynced.append(p95(_timed_calls(tracker, tracker.start_run(f"fsync_{rep}", {}), calls)))
                assert tracker.flush(300)
            synchronous = connect()
            direct.append(p95(_timed_calls(synchronous, synchronous.start_run(f"direct_{rep}", {}), calls // 5)))
            floor.append(p95(_timed(lambda step, metrics: encode(metrics), calls)))
        server.stop()
        for rep in range(repetitions):  # tracker down: everything goes to the journal
            tracker = JournalingTracker(connect, workdir / f"b4_down_{rep}")
            down.append(p95(_timed_calls(tracker, tracker.start_run(f"down_{rep}", {}), calls)))
            tracker.close(0)
        server.start()
        time.sleep(3)  # let the restarted server settle
        for rep in range(repetitions):  # back: the next process replays each journal
            started = time.perf_counter()
            with JournalingTracker(connect, workdir / f"b4_down_{rep}") as replayer:
                assert replayer.flush(600)
                replay_rates.append(calls * METRICS_PER_CALL / (time.perf_counter() - started))
    finally:
        server.stop()
    return {
        "calls": calls,
        "metrics_per_call": METRICS_PER_CALL,
        "p95_ms_tracker_up": statistics.median(up) * 1000,
        "p95_ms_tracker_up_back_to_back": statistics.median(burst) * 1000,
        "p95_ms_tracker_down": statistics.median(down) * 1000,
        "p95_ms_fsync_in_call": statistics.median(fsynced) * 1000,
        "p95_ms_json_encode_floor": statistics.median(floor) * 1000,
        "pause_between_calls_s": PAUSE_S,
        "p95_ms_synchronous_mlflow": statistics.median(direct) * 1000,
        "replay_records_per_s": statistics.median(replay_rates),
        "repetitions": repetitions,
    }
