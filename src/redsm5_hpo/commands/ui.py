"""``redsm5-hpo ui``: MLflow's UI over the experiments' tracking store and optuna-dashboard over a study's
storage, both on 127.0.0.1, until Ctrl-C stops them both."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from redsm5_hpo.config.schema import Config
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.storage import JOURNAL_SCHEME, is_journal
from redsm5_hpo.layout import StudyDir, experiments_root
from redsm5_hpo.pipeline.study_record import StudyRecord, find_study_dir
from redsm5_hpo.ports import HOST
from redsm5_hpo.processes import die_with_parent
from redsm5_hpo.tracking.mlflow_tracker import default_tracking_uri
from redsm5_hpo.tracking.sanitize import mask_secrets

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0


@dataclass
class Server:
    name: str
    url: str
    """What a browser opens."""
    health: str
    """A URL that answers 200 once the server is up."""
    process: subprocess.Popen[bytes]
    log_path: Path


def ui_commands(config: Config, study_dir: Path | None, mlflow_port: int, dashboard_port: int) -> dict[str, list[str]]:
    """The two servers' command lines (pure: what ``serve_ui`` starts). MLflow is started only for a local
    tracking store; a tracking server (``tracking.uri=http...``) already has its UI."""
    bin_dir = Path(sys.executable).parent
    commands: dict[str, list[str]] = {}
    uri = config.tracking.uri or default_tracking_uri(experiments_root(config))
    if not uri.startswith("http"):
        commands["mlflow"] = [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            uri,
            "--artifacts-destination",
            str(experiments_root(config) / "mlartifacts"),
            "--host",
            HOST,
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
        ]
    if study_dir is not None:
        storage = StudyRecord.read(study_dir).storage
        target = [storage.removeprefix(JOURNAL_SCHEME), "--storage-class", "JournalFileStorage"]
        commands["optuna-dashboard"] = [
            str(bin_dir / "optuna-dashboard"),
            *(target if is_journal(storage) else [storage]),
            "--host",
            HOST,
            "--port",
            str(dashboard_port),
            "--quiet",
        ]
    return commands


def serve_ui(config: Config, study: str | None, mlflow_port: int, dashboard_port: int) -> None:
    """Start both, print their URLs, and keep them until Ctrl-C / SIGTERM (then stop both)."""
    try:
        study_dir: Path | None = find_study_dir(config, study)
    except StudyError:
        if study:
            raise
        study_dir = None  # no study yet: MLflow alone
    commands = ui_commands(config, study_dir, mlflow_port, dashboard_port)
    logs = ui_log_dir(study_dir)
    servers: list[Server] = []
    stop = {"signal": 0}

    def request_stop(signum: int, frame: object) -> None:
        stop["signal"] = signum

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, command in commands.items():
            port = mlflow_port if name == "mlflow" else dashboard_port
            url = f"http://{HOST}:{port}"
            log_path = logs / f"{name}.log"
            with log_path.open("wb") as out:  # this run's lines only: an error quotes its tail
                process = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
                )
            health = f"{url}/health" if name == "mlflow" else f"{url}/api/meta"
            servers.append(Server(name, url, health, process, log_path))
        for server in servers:
            _wait_until_up(server)
        if config.tracking.uri and config.tracking.uri.startswith("http"):
            print(f"MLflow UI: {mask_secrets(config.tracking.uri)} (the tracking server's own)", flush=True)
        for server in servers:
            if server.name == "mlflow":
                print(f"MLflow UI: {_runs_page(server.url, config.tracking.experiment_name)}", flush=True)
            else:
                print(f"optuna-dashboard: {server.url}", flush=True)
        print("Ctrl-C stops both.", flush=True)
        while not stop["signal"]:
            for server in servers:
                if server.process.poll() is not None:
                    raise StudyError(f"{server.name} exited; its log {server.log_path} ends with:\n{_tail(server)}")
            time.sleep(0.5)
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.process.terminate()
        for server in servers:
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("stopped", flush=True)


def ui_log_dir(study_dir: Path | None) -> Path:
    """The servers' logs: ``<study>/logs/ui/``, or a temporary directory before any study exists."""
    if study_dir is None:
        return Path(tempfile.mkdtemp(prefix="redsm5-hpo-ui-"))
    path = StudyDir(study_dir).logs / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _runs_page(url: str, experiment_name: str) -> str:
    """The experiment's runs table in the UI's model-training view (MLflow 3's UI otherwise opens on its
    GenAI view, whatever the experiment's kind tag says)."""
    query = urllib.parse.urlencode({"experiment_name": experiment_name})
    try:
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name?{query}", timeout=10) as response:
            experiment_id = json.loads(response.read())["experiment"]["experiment_id"]
    except (OSError, KeyError, ValueError):  # no run logged yet: the experiment does not exist
        return url
    return f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StudyError(f"{server.name} did not start; its log {server.log_path} ends with:\n{_tail(server)}")
        try:
            with urllib.request.urlopen(server.health, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise StudyError(f"{server.name} did not answer at {server.health} within {START_TIMEOUT_S:.0f} s")


def _tail(server: Server, lines: int = 15) -> str:
    text = server.log_path.read_text(encoding="utf-8", errors="replace") if server.log_path.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])
