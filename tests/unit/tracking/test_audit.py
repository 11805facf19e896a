"""The metric audit behind `verify`."""

from __future__ import annotations

from redsm5_hpo.tracking.audit import ExpectedRun, audit, format_audit


def test_audit_reports_missing_and_duplicated_points() -> None:
    expected = [ExpectedRun("r1", "trial 0", frozenset({("loss", 1), ("loss", 2), ("f1", 1)}))]
    held = {"r1": [("loss", 1, 10), ("loss", 1, 11), ("f1", 1, 10)]}
    result = audit(expected, held, duplicates_only=[("r2", "trial 1 (failed)")])
    assert result.missing == [("trial 0", "loss", 2)]
    assert result.duplicated == [("trial 0", "loss", 1, 2)]
    assert not result.ok
    assert "FAILED: 1 missing, 1 duplicated" in format_audit(result)


def test_audit_of_a_complete_series_is_ok_and_checks_partial_runs_for_duplicates() -> None:
    expected = [ExpectedRun("r1", "study", frozenset({("best", 1)}))]
    assert audit(expected, {"r1": [("best", 1, 5)]}).ok
    result = audit(expected, {"r1": [("best", 1, 5)], "r2": [("m", 3, 1), ("m", 3, 2)]}, [("r2", "killed")])
    assert result.duplicated == [("killed", "m", 3, 2)]
