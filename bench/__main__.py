"""Runs the benchmarks: `python -m bench` runs all, `python -m bench NAME` one.

Each benchmark is a module `bench/NAME.py` with a `main() -> dict[str, float]`
that starts what it needs and prints its figures; the figures are written to
bench/results/NAME.json, and the README's table is generated again from them
(`python -m bench --table` does only that). The databases a bench made are
dropped when it ends (BENCH_KEEP_DATABASES=1 keeps them); `python -m bench
--clean` (`make bench-clean`) drops every bench database of the local stack.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
from pathlib import Path

from bench import _table
from bench.ingest import CREATED, drop_databases

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
    try:
        figures = module.main()
    finally:
        if not os.environ.get("BENCH_KEEP_DATABASES"):
            drop_databases(CREATED)
        CREATED.clear()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{name}: {json.dumps(figures)} -> bench/results/{name}.json")


def main(argv: list[str]) -> int:
    if argv == ["--table"]:
        return 0 if _table.update(README, RESULTS) else 1
    if argv == ["--clean"]:
        print(f"dropped {clean()} bench database(s)")
        return 0
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


def clean() -> int:
    """Drop every bench database of the local stack (those runs left or kept)."""
    import psycopg

    from deploy.stack.local import LocalStack

    url = LocalStack().up().database_url
    with psycopg.connect(url) as conn:
        names = [row[0] for row in conn.execute(BENCH_DATABASES)]
    server = url.rsplit("/", 1)[0]
    return drop_databases(f"{server}/{name}" for name in names)


BENCH_DATABASES = "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
