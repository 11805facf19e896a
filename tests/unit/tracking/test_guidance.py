"""What the operator is told about the tracker: the outage once, its end, each repair guidance once."""

from __future__ import annotations

import logging

from redsm5_hpo.tracking.guidance import OperatorGuidance


class _Refused(Exception):
    error_code = "UNAUTHENTICATED"


def test_an_outage_is_announced_once_and_its_end_resets_the_backoff(tmp_path, caplog) -> None:
    guidance = OperatorGuidance("the MLflow server", tmp_path)
    with caplog.at_level(logging.INFO, logger="redsm5_hpo"):
        guidance.failed(ConnectionError("refused\nsecond line"))
        guidance.failed(ConnectionError("refused"))
        assert guidance.failures == 2 and guidance.outage_since is not None
        guidance.recovered()
        guidance.recovered()
    assert caplog.text.count("is unreachable or failing (refused)") == 1
    assert caplog.text.count("is reachable again") == 1
    assert (guidance.failures, guidance.outage_since) == (0, None)


def test_credentials_and_corruption_guidance_each_once_per_process(tmp_path, caplog) -> None:
    guidance = OperatorGuidance("the MLflow server", tmp_path)
    with caplog.at_level(logging.ERROR, logger="redsm5_hpo"):
        for _ in range(3):
            guidance.failed(_Refused("token expired"))
            guidance.failed(RuntimeError("file is not a database"))
    assert caplog.text.count("refuses the credentials") == 1
    assert caplog.text.count("looks corrupted") == 1 and "sqlite3 mlflow.db .recover" in caplog.text
