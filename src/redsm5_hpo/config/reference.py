"""The configuration reference page, rendered from the schema's field docstrings.

``make docs`` writes it to ``docs/configuration-reference.md``; a unit test renders it again and
fails when the committed page differs, so the page cannot drift from ``schema.py``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import re
import typing
from typing import Any

from redsm5_hpo.config import schema
from redsm5_hpo.config.schema import DEPRECATED_KEYS, Config

HEADER = """# Configuration reference

Generated from the field docstrings of `src/redsm5_hpo/config/schema.py` by `make docs`; do not edit
by hand (a test fails when this page and the schema differ). Defaults are those `make train` runs
with: the dataclass defaults composed with the YAML files under `configs/`. How to set values and the
config groups are in [configuration.md](configuration.md).
"""

_LONG_DEFAULT = 48


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal right after it in the class body), as one line."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(following.value.value).split())
    return docs


def render(config: Config) -> str:
    """The reference page for ``config``'s values as defaults: one table per section."""
    sections = [("Top level", "", config)] + [
        (f"`{f.name}`", f"{f.name}.", getattr(config, f.name))
        for f in dataclasses.fields(config)
        if dataclasses.is_dataclass(getattr(config, f.name))
    ]
    parts = [HEADER]
    for title, prefix, section in sections:
        parts.append(f"## {title}\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |")
        parts += _rows(prefix, section, top=not prefix)
        parts.append("")
    parts.append(
        "## Renamed keys\n\nSizes are in MB and times in seconds everywhere. "
        "These old keys still work until the next release,"
    )
    parts.append("with a warning, and are converted:\n\n| old key | new key | unit |\n| --- | --- | --- |")
    for old, (new, _, change) in DEPRECATED_KEYS.items():
        parts.append(f"| `{old}` | `{old.rsplit('.', 1)[0]}.{new}` | {change} |")
    return "\n".join(parts).rstrip() + "\n"


def _rows(prefix: str, section: Any, top: bool = False) -> list[str]:
    """One table row per field of ``section``; a nested section's fields follow under its dotted prefix
    (``hpo.confirm.top_k``). The top level's sections have tables of their own."""
    rows: list[str] = []
    docs = field_docs(type(section))
    hints = typing.get_type_hints(type(section), vars(schema))
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            rows += [] if top else _rows(f"{prefix}{f.name}.", value)
            continue
        row = [f"`{prefix}{f.name}`", _type_text(hints[f.name]), _default_text(value), _markdown(docs.get(f.name, ""))]
        rows.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return rows


def _type_text(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(hint))
    text = getattr(hint, "__name__", None) if origin is None else None
    return text or str(hint).replace("typing.", "")


def _default_text(value: Any) -> str:
    if value is None:
        text = "null"
    elif isinstance(value, str):
        text = value or '""'
    elif isinstance(value, (dict, list)):
        text = json.dumps(value)
    else:
        text = str(value)
    return "see `configs/`" if len(text) > _LONG_DEFAULT else f"`{text}`"


def _markdown(doc: str) -> str:
    return re.sub(r"``([^`]+)``", r"`\1`", doc)


def _cell(text: str) -> str:
    return re.sub(r"(?<!\\)\|", r"\\|", text)
