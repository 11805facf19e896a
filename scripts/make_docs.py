"""Write docs/configuration-reference.md from the schema's field docstrings (``make docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

from redsm5_hpo.config import load_config
from redsm5_hpo.config.reference import render

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration-reference.md"


def main() -> int:
    text = render(load_config([]))
    if PAGE.is_file() and PAGE.read_text(encoding="utf-8") == text:
        print(f"{PAGE.name} is up to date")
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
