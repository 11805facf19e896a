"""A study whose Hugging Face token expires pauses before the next trial and continues by itself."""

from __future__ import annotations

from tests.integration.test_tracking_outage import TINY, Cli


def test_study_pauses_on_an_expired_token_and_resumes_when_it_is_renewed(tmp_path) -> None:
    state = tmp_path / "token_state"
    state.write_text("expired")
    root = tmp_path / "experiments"
    study = Cli(
        root,
        "tune",
        *TINY,
        "train.epochs=1",
        "hpo.n_trials=1",
        f"hub.token_check=command:grep -q valid {state}",
        "hub.recheck_interval_s=0.5",
        "--no-progress",
    )
    study.wait_for("token has expired")
    study.wait_for("still expired")
    assert not any("epoch 1:" in line for line in study.lines)  # nothing trained while paused
    state.write_text("valid")
    assert study.finish() == 0, study.output[-3000:]
    assert "valid again" in study.output
    assert "epoch 1:" in study.output
