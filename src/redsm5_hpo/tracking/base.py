"""The tracker interface the rest of the code talks to: what writes (training and the study only ever
write) and what reads (a resume and ``verify``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol


class TrackerWriter(Protocol):
    """Everything a run records. ``JournalingTracker`` journals each call and returns; only ``start_run``
    may ask the tracker (see ``tracking.buffered``)."""

    def start_run(self, name: str, tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        """Open a run and return its id."""
        ...

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Log each metric at ``step``; a (metric, step) the run holds already is not logged again."""
        ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def log_artifact(self, run_id: str, path: Path) -> None: ...

    def log_dataset(self, run_id: str, dataset: Mapping[str, Any]) -> None:
        """Record the data a run used as a dataset input: ``name``, ``digest``, ``source``, ``revision``,
        ``splits`` (posts per split), ``context`` (training / evaluation). Never any text."""
        ...

    def end_run(self, run_id: str, status: str = "FINISHED") -> None: ...

    def reopen_run(self, run_id: str) -> None:
        """Mark an interrupted run as running again (a resume continues the same run)."""
        ...


class TrackerReader(Protocol):
    """What the tracker holds; each call asks it (one request)."""

    def logged_metric_steps(self, run_id: str) -> set[tuple[str, int]]:
        """Every (metric, step) the run already holds (or is on its way there)."""
        ...

    def metric_points(self, run_id: str) -> list[tuple[str, int, int]]:
        """Every (metric, step, timestamp_ms) the tracker holds for the run, duplicates included."""
        ...


class Tracker(TrackerWriter, TrackerReader, Protocol):
    def close(self) -> object:
        """Deliver what is buffered (as far as the tracker lets it) and release resources."""
        ...


def flatten_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr_head": 0.001}}`` -> ``{"train.lr_head": "0.001"}``."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name + "."))
        else:
            flat[name] = str(value)
    return flat
