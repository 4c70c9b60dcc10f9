"""Runs the benchmarks: `python -m bench` runs all, `python -m bench NAME` one.

Each benchmark is a module `bench/NAME.py` with a `main() -> dict[str, float]`
that starts what it needs and prints its figures; the figures are written to
bench/results/NAME.json, and the README's table is generated again from them
(`python -m bench --table` does only that).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

from bench import _table

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"


def available() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_")
    )


def run(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    figures = module.main()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{name}: {json.dumps(figures)} -> bench/results/{name}.json")


def main(argv: list[str]) -> int:
    if argv == ["--table"]:
        return 0 if _table.update(README, RESULTS) else 1
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available() or 'none yet'}")
        return 2
    if not names:
        print("no benchmarks yet")
    for name in names:
        run(name)
        _table.update(README, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
