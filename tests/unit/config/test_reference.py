"""The generated configuration reference: every field documented, the committed page current."""

from __future__ import annotations

import dataclasses

from redsm5_hpo.config import load_config
from redsm5_hpo.config.reference import field_docs, render
from redsm5_hpo.config.schema import Config
from tests.conftest import CONFIG_DIR, REPO

PAGE = REPO / "docs" / "configuration-reference.md"


def test_every_field_of_every_section_has_a_docstring() -> None:
    config = Config()
    sections = [config, *(getattr(config, f.name) for f in dataclasses.fields(config))]
    undocumented = [
        f"{type(section).__name__}.{f.name}"
        for section in sections
        if dataclasses.is_dataclass(section)
        for f in dataclasses.fields(section)
        if f.name not in field_docs(type(section)) and not dataclasses.is_dataclass(getattr(section, f.name))
    ]
    assert undocumented == []


def test_the_committed_reference_is_what_make_docs_writes() -> None:
    expected = render(load_config([], CONFIG_DIR))
    assert PAGE.read_text(encoding="utf-8") == expected, "docs/configuration-reference.md is stale: run `make docs`"


def test_the_reference_lists_choices_defaults_and_docs() -> None:
    page = render(load_config(["train.epochs=7"], CONFIG_DIR))
    assert "| `train.epochs` | int | `7` |" in page
    assert "`adamw` \\| `sgd`" in page
    assert "`retention_policy.max_total_size_gb` | `retention_policy.max_total_size_mb` | GB to MB |" in page
