"""The README and docs/*.md agree with the tool: every `redsm5-hpo ...` command they show parses (with the
options it uses) and has --help, and every `make <target>` they name exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from redsm5_hpo.cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[3]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
PLACEHOLDERS = ("<command>", "<verb>")


def code_of(page: Path) -> list[str]:
    """The page's code: each line of its fenced blocks and each inline code span."""
    text = page.read_text(encoding="utf-8")
    lines = [line for block in FENCE.findall(text) for line in block.replace("\\\n", " ").splitlines()]
    return lines + SPAN.findall(FENCE.sub("", text))


def segments(code: str) -> list[str]:
    """One shell command line cut at `&&`, `;`, `|` and a trailing comment."""
    code = re.sub(r"\s#.*$", "", code)
    return [s.strip() for s in re.split(r"&&|;|\|", code) if s.strip()]


def shown(prefix: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for code in code_of(page):
            for segment in segments(code):
                start = segment.find(prefix)
                if start >= 0 and (start == 0 or segment[start - 1] in " (=\"'/"):
                    found.append((page.name, segment[start:]))
    return found


COMMAND_LINES = [(page, line) for page, line in shown("redsm5-hpo ") if not any(p in line for p in PLACEHOLDERS)]
MAKE_LINES = [(page, line) for page, line in shown("make ") if not any(p in line for p in PLACEHOLDERS)]


def test_the_docs_show_commands_and_make_targets() -> None:  # the scan itself finds what it checks
    assert len(COMMAND_LINES) > 30 and {line.split()[1] for _, line in COMMAND_LINES} >= set(COMMANDS) - {"worker"}
    assert len(MAKE_LINES) > 20


@pytest.mark.parametrize(("page", "line"), COMMAND_LINES, ids=[f"{p}:{line}" for p, line in COMMAND_LINES])
def test_every_command_shown_parses_and_has_help(page: str, line: str, capsys) -> None:
    words = shlex.split(line)[1:]
    parser = build_parser()
    if words[0].startswith("-"):  # `redsm5-hpo --version`, `redsm5-hpo --help`
        with pytest.raises(SystemExit) as ended:
            parser.parse_args(words)
        assert ended.value.code == 0
        return
    try:
        _, extra = parser.parse_known_args(words)
    except SystemExit:
        pytest.fail(f"{page}: `{line}` does not parse: {capsys.readouterr().err.strip()}")
    stray = [w for w in extra if w.startswith("-") or "=" not in w]
    assert not stray, f"{page}: `{line}` has options the tool does not know: {stray}"
    with pytest.raises(SystemExit) as ended:
        parser.parse_args([words[0], "--help"])
    assert ended.value.code == 0


def test_every_make_target_named_exists() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    missing = sorted({(page, line) for page, line in MAKE_LINES if line.split()[1] not in targets})
    assert not missing, f"make targets the docs name but the Makefile lacks: {missing}"
