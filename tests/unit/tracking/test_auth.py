"""Token provider (a real command, a controlled clock), token parsing and the plain-http guard."""

from __future__ import annotations

import os
import sys

import pytest

from redsm5_hpo.config import load_config
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.tracking.auth import (
    TOKEN_ENV,
    Token,
    TokenCommandError,
    TokenProvider,
    insecure_remote,
    needs_refresh,
    parse_token_output,
)
from tests.conftest import CONFIG_DIR


def test_token_output_bare_or_json() -> None:
    assert parse_token_output("abc\n", now=100, default_lifetime_s=60) == Token("abc", 160)
    assert parse_token_output('{"token": "t", "expires_in": 5}', now=100, default_lifetime_s=60) == Token("t", 105)
    assert parse_token_output('{"token": "t", "expires_at": 999}', now=100, default_lifetime_s=60) == Token("t", 999)
    with pytest.raises(TokenCommandError):
        parse_token_output("  ", now=0, default_lifetime_s=1)
    with pytest.raises(TokenCommandError):
        parse_token_output('{"expires_in": 5}', now=0, default_lifetime_s=1)


def test_refresh_happens_a_margin_before_expiry() -> None:
    token = Token("t", expires_at=100)
    assert needs_refresh(None, 0, 10)
    assert not needs_refresh(token, 89, 10)
    assert needs_refresh(token, 90, 10)


def test_provider_runs_the_command_again_before_the_token_expires(tmp_path, monkeypatch) -> None:
    counter = tmp_path / "count"
    script = tmp_path / "token.py"
    script.write_text(
        "import json, pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "print(json.dumps({'token': f'tok-{n}', 'expires_in': 30}))\n"
    )
    now = [1000.0]
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    provider = TokenProvider(f"{sys.executable} {script}", refresh_margin_s=5, clock=lambda: now[0])
    provider.ensure_fresh()
    assert os.environ[TOKEN_ENV] == "tok-1"
    now[0] += 20
    provider.ensure_fresh()
    assert os.environ[TOKEN_ENV] == "tok-1"  # still 10 s left: not renewed
    now[0] += 6
    provider.ensure_fresh()
    assert os.environ[TOKEN_ENV] == "tok-2" and provider.renewals == 2


def test_a_failing_token_command_says_what_failed(tmp_path) -> None:
    provider = TokenProvider(f"{sys.executable} -c \"import sys; sys.exit('no session')\"")
    with pytest.raises(TokenCommandError, match="exited with 1: no session"):
        provider.ensure_fresh()


def test_plain_http_is_refused_off_this_machine(tmp_path) -> None:
    assert insecure_remote("http://mlflow.example.org")
    assert not insecure_remote("http://127.0.0.1:5000")
    assert not insecure_remote("https://mlflow.example.org")
    overrides = [f"experiments_dir={tmp_path}", "tracking.uri=http://mlflow.example.org"]
    with pytest.raises(ConfigError, match="unencrypted"):
        load_config(overrides, CONFIG_DIR)
    load_config([*overrides, "tracking.allow_insecure_http=true"], CONFIG_DIR)
