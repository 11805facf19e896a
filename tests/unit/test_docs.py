"""The documentation: a short front page, and no link in README.md, docs/ or bench/README.md that leads nowhere."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

PAGES = [REPO / "README.md", REPO / "bench" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _anchors(page: Path) -> set[str]:
    anchors, in_code = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        in_code = in_code != line.startswith("```")
        if not in_code and line.startswith("#"):
            title = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
            anchors.add(title.replace(" ", "-"))
    return anchors


def test_every_relative_link_and_anchor_exists() -> None:
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert broken == []


def test_the_front_page_stays_short_and_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 10_500
    for page in (REPO / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, page.name


def test_code_configs_and_docs_refer_to_no_requirement_list_outside_the_repository() -> None:
    """What the code guarantees is said in words or linked to a docs page, never as an id of an outside list."""
    files = [*(REPO / "src").rglob("*.py"), *(REPO / "configs").rglob("*.yaml"), *PAGES]
    cited = [
        f"{path.relative_to(REPO)}: {match.group()}"
        for path in files
        for match in re.finditer(r"\bM-\d\d\b", path.read_text())
    ]
    assert files and cited == []
