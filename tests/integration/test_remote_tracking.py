"""Remote tracking over TLS with a private CA: short-lived bearer tokens from a command, renewed before
they expire, and basic auth from MLflow's standard variables. A real MLflow server behind a real HTTPS
proxy that refuses bad credentials."""

from __future__ import annotations

import sys

from tests.helpers.auth_proxy import AuthProxy
from tests.integration.test_tracking_outage import TINY, Cli, metric_counts, server  # noqa: F401

TOKEN_SCRIPT = """
import json, pathlib, sys, time
directory = pathlib.Path(sys.argv[1])
counter = directory / "count"
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
lifetime = 8
with open(directory / "registry", "a") as f:
    f.write(f"tok-{n} {time.time() + lifetime}\\n")
print(json.dumps({"token": f"tok-{n}", "expires_in": lifetime}))
"""


def test_short_lived_tokens_are_renewed_before_they_expire(tmp_path, server) -> None:  # noqa: F811
    script = tmp_path / "token.py"
    script.write_text(TOKEN_SCRIPT)
    with AuthProxy(server.uri, tmp_path, "bearer", token_registry=tmp_path / "registry") as proxy:
        overrides = [
            f"tracking.uri={proxy.uri}",
            f"tracking.ca_bundle={proxy.cert}",
            f"tracking.token_command={sys.executable} {script} {tmp_path}",
            "tracking.token_refresh_margin_s=5",  # a token is used at least 3 s after it is fetched, even under load
        ]
        study = Cli(
            tmp_path / "experiments", "tune", *TINY, "train.epochs=3", "hpo.n_trials=2", *overrides, "--no-progress"
        )
        assert study.finish() == 0, study.output[-3000:]
        verified = Cli(tmp_path / "experiments", "verify", *overrides)
        assert verified.finish() == 0, verified.output[-3000:]
    assert proxy.refused == []
    assert len(set(proxy.seen)) >= 2, "the study outlived one token (8 s): it must have renewed"
    assert all(seen.startswith("Bearer tok-") for seen in proxy.seen)
    assert "tok-" not in study.output  # tokens never reach the logs
    counts = metric_counts(server.uri)
    assert counts and set(counts.values()) == {1}


def test_basic_auth_from_mlflow_environment_variables(tmp_path, server, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret-pass")
    with AuthProxy(server.uri, tmp_path, "basic", user="alice", password="s3cret-pass") as proxy:
        overrides = [f"tracking.uri={proxy.uri}", f"tracking.ca_bundle={proxy.cert}"]
        trained = Cli(tmp_path / "experiments", "train", *TINY, "train.epochs=1", *overrides, "--no-progress")
        assert trained.finish() == 0, trained.output[-3000:]
    assert proxy.refused == [] and proxy.seen
    assert {key for (_, key, _) in metric_counts(server.uri)} >= {"train_loss", "val_criteria_macro_f1"}
