"""A wrong or unreachable model id, or a missing data directory, answers in seconds and says which case it
is: real CLI processes against offline mode, a host that does not resolve and a real HTTP server that
answers 404 as the hub does for an unknown repository."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import CONFIG_DIR


def train(tmp_path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    """`redsm5-hpo tune --dry-run` (config, data, encoder and disk checked as a study starts, through the
    same encoder loading as every trial) with an empty Hugging Face cache; fails the test past 10 s."""
    environment = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), **env}
    command = [sys.executable, "-m", "redsm5_hpo", "tune", "--dry-run", *overrides]
    command += [f"experiments_dir={tmp_path / 'experiments'}", "--config-dir", str(CONFIG_DIR)]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=10)


@pytest.fixture
def hub_without_the_model() -> Iterator[tuple[str, list[str]]]:
    """A local endpoint answering every request as the hub answers for a repository that does not exist."""
    requests: list[str] = []

    class NotFound(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            requests.append(self.path)
            body = b'{"error": "Repository Not Found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "RepositoryNotFound")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_offline_mode_says_so_at_once(tmp_path) -> None:
    ended = train(tmp_path, "model.encoder=does/not-exist", HF_HUB_OFFLINE="1")
    assert ended.returncode == 2 and "Traceback" not in ended.stderr
    assert "the Hugging Face hub cannot be reached (HF_HUB_OFFLINE is set)" in ended.stderr
    assert "model.encoder to a local path" in ended.stderr and "bundled:all-MiniLM-L6-v2" in ended.stderr
    assert "download of" not in ended.stdout  # no retry


def test_a_hub_host_that_does_not_resolve_says_so_at_once(tmp_path) -> None:
    ended = train(tmp_path, "model.encoder=does/not-exist", HF_HUB_OFFLINE="0", HF_ENDPOINT="https://hub.invalid")
    assert ended.returncode == 2
    assert "cannot be reached (its host hub.invalid does not resolve" in ended.stderr
    assert "download of" not in ended.stdout


def test_an_unknown_model_is_no_such_model_on_the_first_answer(tmp_path, hub_without_the_model) -> None:
    endpoint, requests = hub_without_the_model
    ended = train(tmp_path, "model.encoder=does/not-exist", HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint)
    assert ended.returncode == 2
    assert f"no model 'does/not-exist' on the Hugging Face hub ({endpoint}): check the id" in ended.stderr
    assert any("does/not-exist" in path for path in requests) and len(requests) < 10  # asked, not hammered
    assert "download of" not in ended.stdout  # a 404 is not retried


def test_a_local_data_source_that_does_not_exist_says_directory_not_found(tmp_path) -> None:
    ended = train(tmp_path, f"data.source={tmp_path / 'nonexistent'}", "model=tiny")
    assert ended.returncode == 2
    assert f"data.source: {tmp_path / 'nonexistent'}: directory not found" in ended.stderr
    assert "hub" not in ended.stderr.split("A local source")[0]  # no hub message for a path
    assert not (tmp_path / "experiments").exists()  # refused before anything was written
