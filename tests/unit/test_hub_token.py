"""The Hugging Face token gate with a real check command whose answer a file controls."""

from __future__ import annotations

import logging
import threading
import time

from redsm5_hpo.config.schema import Config, with_values
from redsm5_hpo.hub_token import TokenGate, TokenStatus, check_from_config, command_check, hub_whoami_check, uses_hub


def file_check(path):
    return command_check(f"grep -q valid {path}")


def test_a_valid_token_passes_at_once(tmp_path) -> None:
    (tmp_path / "state").write_text("valid")
    gate = TokenGate(file_check(tmp_path / "state"), recheck_s=60)
    gate.wait_until_valid("trial 1")
    assert gate.pauses == 0


def test_an_expired_token_pauses_warns_and_resumes_by_itself(tmp_path, caplog) -> None:
    state = tmp_path / "state"
    state.write_text("expired")
    assert file_check(state)() is TokenStatus.EXPIRED
    gate = TokenGate(file_check(state), recheck_s=0.1)
    threading.Timer(0.6, lambda: state.write_text("valid")).start()
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="redsm5_hpo"):
        gate.wait_until_valid("the epoch 2 checkpoint")
    assert time.monotonic() - started >= 0.5
    assert gate.pauses == 1
    assert "hf auth login" in caplog.text and "paused before the epoch 2 checkpoint" in caplog.text
    assert "valid again" in caplog.text


def test_the_check_is_chosen_from_config() -> None:
    config = Config()
    assert not uses_hub(config)
    assert check_from_config(config) is None  # bundled encoder, sample data: no token involved
    config = with_values(config, {"hub.token_check": "command:true"})
    check = check_from_config(config)
    assert check is not None and check() is TokenStatus.VALID
    config = with_values(config, {"model.encoder": "some-org/some-model"})
    assert uses_hub(config)


def test_a_check_that_cannot_reach_the_hub_says_so_once_and_the_study_goes_on(monkeypatch, caplog) -> None:
    import huggingface_hub

    def outage(token=None):
        raise ConnectionError("hub.example: temporary failure in name resolution")

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_token")
    monkeypatch.setattr(huggingface_hub, "whoami", outage)
    check = hub_whoami_check()
    gate = TokenGate(check, recheck_s=0.0, sleep=lambda s: None)
    with caplog.at_level(logging.WARNING, logger="redsm5_hpo.hub_token"):
        for before in ("trial 1", "trial 2", "trial 3"):
            gate.wait_until_valid(before)  # unknown is not expired: no pause
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not check the Hugging Face token (ConnectionError" in warnings[0]
    assert "hf auth login" in warnings[0] and gate.pauses == 0
    assert check() is TokenStatus.UNKNOWN
