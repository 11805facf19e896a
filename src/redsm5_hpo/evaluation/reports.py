"""JSON reports: validated against the schemas in ``redsm5_hpo/schemas`` and written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from redsm5_hpo.atomic_files import write_json_atomic
from redsm5_hpo.tracking.sanitize import masked

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def load_schema(name: str) -> dict[str, Any]:
    """``name`` is e.g. ``study_report`` for ``redsm5_hpo/schemas/study_report.schema.json``."""
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def validate_report(report: dict[str, Any], schema_name: str) -> None:
    """Raise ``jsonschema.ValidationError`` if ``report`` breaks its schema."""
    import jsonschema

    jsonschema.validate(report, load_schema(schema_name))


def write_report(path: Path, report: dict[str, Any], schema_name: str) -> Path:
    """Validate, then write through a temporary file and an atomic rename, with every secret masked (a
    report leaves the machine: an MLflow artifact, a copy for a colleague)."""
    validate_report(report, schema_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(path, masked(report))
