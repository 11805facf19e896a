"""Compare the metric series a study should have in the tracker with what the tracker holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExpectedRun:
    run_id: str
    label: str
    """What the run is, for the report (``study``, ``trial 3``)."""
    points: frozenset[tuple[str, int]]
    """Every (metric, step) the run must hold exactly once."""


@dataclass
class AuditResult:
    runs_checked: int = 0
    points_checked: int = 0
    missing: list[tuple[str, str, int]] = field(default_factory=list)
    """(run label, metric, step) the tracker does not hold."""
    duplicated: list[tuple[str, str, int, int]] = field(default_factory=list)
    """(run label, metric, step, times held) held more than once."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.duplicated


def audit(
    expected: Iterable[ExpectedRun],
    held: Mapping[str, Sequence[tuple[str, int, int]]],
    duplicates_only: Iterable[tuple[str, str]] = (),
) -> AuditResult:
    """``held``: run id -> (metric, step, timestamp) points. ``duplicates_only``: (run id, label) of runs
    whose full series is unknown (failed, interrupted): checked for duplicates, not for gaps."""
    result = AuditResult()
    for run in expected:
        counts = Counter((metric, step) for metric, step, _ in held.get(run.run_id, ()))
        result.runs_checked += 1
        result.points_checked += len(run.points)
        result.missing += sorted((run.label, m, s) for m, s in run.points if counts[(m, s)] == 0)
        result.duplicated += sorted((run.label, m, s, n) for (m, s), n in counts.items() if n > 1)
    for run_id, label in duplicates_only:
        counts = Counter((metric, step) for metric, step, _ in held.get(run_id, ()))
        result.runs_checked += 1
        result.duplicated += sorted((label, m, s, n) for (m, s), n in counts.items() if n > 1)
    return result


def format_audit(result: AuditResult, limit: int = 50) -> str:
    lines = [f"checked {result.runs_checked} run(s), {result.points_checked} expected (metric, step) point(s)"]
    for label, metric, step in result.missing[:limit]:
        lines.append(f"missing    {label}: {metric} at step {step}")
    for label, metric, step, count in result.duplicated[:limit]:
        lines.append(f"duplicated {label}: {metric} at step {step} ({count} times)")
    hidden = len(result.missing) + len(result.duplicated) - 2 * limit
    if hidden > 0:
        lines.append(f"... and {hidden} more")
    lines.append(
        "OK: every expected metric is in the tracker exactly once"
        if result.ok
        else f"FAILED: {len(result.missing)} missing, {len(result.duplicated)} duplicated"
    )
    return "\n".join(lines)
