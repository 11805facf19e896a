"""Run a command in-process and list every call that climbs back up the package layers.

    .venv/bin/python scripts/walk_calls.py tune model=tiny hpo.n_trials=1 train.epochs=2 experiments_dir=/tmp/w

The layers are import-linter's (``pyproject.toml``). A call from a module into a function of a higher layer
is control climbing back up: through an object handed down (an observer such as the trial loop's
``TrialObserver``) or through a callback. Each is printed with how often it ran.
"""

from __future__ import annotations

import collections
import sys
import tomllib
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def layer_ranks() -> dict[str, int]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return {
        name.strip().removeprefix("redsm5_hpo."): rank
        for rank, line in enumerate(contract["layers"])
        for name in line.split("|")
    }


def main(argv: list[str]) -> int:
    ranks = layer_ranks()
    climbs: collections.Counter[tuple[str, str]] = collections.Counter()

    def rank(module: str) -> int | None:
        parts = module.split(".")
        return ranks.get(parts[1]) if parts[0] == "redsm5_hpo" and len(parts) > 1 else None

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or frame.f_back is None:
            return
        callee, caller = frame.f_globals.get("__name__", ""), frame.f_back.f_globals.get("__name__", "")
        high, low = rank(callee), rank(caller)
        if high is not None and low is not None and high < low:
            climbs[(caller, f"{callee}.{frame.f_code.co_name}")] += 1

    from redsm5_hpo.cli.main import main as cli

    sys.setprofile(profile)
    try:
        code = cli(argv)
    finally:
        sys.setprofile(None)
    print(f"exit {code}; calls that climb a layer (caller -> callee: times):")
    for (caller, callee), times in sorted(climbs.items()):
        print(f"  {caller} -> {callee}: {times}")
    print(f"{len(climbs)} distinct, {sum(climbs.values())} calls")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
