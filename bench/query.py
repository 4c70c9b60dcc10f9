"""Query latency: each endpoint under wrk (32 connections), 10M events over 10k organizations.

The history is seeded into the store by SQL and projected by a rebuild (the
real projection), spread over the last 92 days so the current billing period
has data. Each endpoint then gets BENCH_QUERY_SECONDS of wrk at concurrency 32
against the real `metering api run` process.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from bench.ingest import CREATED, fresh_database
from bench.rebuild import EVENTS, seed
from deploy.stack.local import LocalStack
from services.projector.rebuild import rebuild
from services.query_api.auth import sign
from tests.support.processes import ApiProcess

SECONDS = int(os.environ.get("BENCH_QUERY_SECONDS", "10"))
SECRET = "bench-secret-long-enough-for-hs256-signing!"  # noqa: S105 (a throwaway local key)
console = Console()

# In the seeded history, event i belongs to org-(i/10 % 10000), scn-(i/10 % 20), run-(i/10).
ORG, SCENARIO, RUN = "org-1234", "scn-14", "run-1234"
ENDPOINTS = {
    "usage": f"/v1/organizations/{ORG}/usage",
    "usage_daily": f"/v1/organizations/{ORG}/usage/daily",
    "billing_periods": f"/v1/organizations/{ORG}/billing-periods",
    "scenarios": f"/v1/organizations/{ORG}/scenarios?limit=20",
    "scenario": f"/v1/organizations/{ORG}/scenarios/{SCENARIO}",
    "runs": f"/v1/organizations/{ORG}/scenarios/{SCENARIO}/runs?limit=20",
    "scenario_modules": f"/v1/organizations/{ORG}/scenarios/{SCENARIO}/modules",
    "run": f"/v1/organizations/{ORG}/runs/{RUN}",
    "run_log": f"/v1/organizations/{ORG}/runs/{RUN}/log?detail=advanced",
    "all_runs": f"/v1/organizations/{ORG}/runs?limit=20",
    "usage_apps": f"/v1/organizations/{ORG}/usage/apps",
    "purchases": f"/v1/organizations/{ORG}/purchases",
}


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, token: str) -> dict[str, float]:
    """p50, p99 (ms) and requests/s of one endpoint."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c32",
            f"-d{SECONDS}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE)
    percentiles = {p: _ms(value, unit) for p, value, unit in found}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} failed responses")
    return {"p50_ms": percentiles["50"], "p99_ms": percentiles["99"], "requests_per_s": rate}


def main() -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run deploy/install-system-deps.sh")
    endpoints = LocalStack().up()
    database = os.environ.get("BENCH_QUERY_DATABASE")  # a database an earlier run filled
    if database is None:
        database = fresh_database(endpoints.database_url)
        console.print(f"seeding {EVENTS:,} events over 10,000 organizations ...")
        asyncio.run(seed(database, start=datetime.now(UTC) - timedelta(days=92)))
        console.print("projecting them (rebuild) ...")
        report = asyncio.run(rebuild(database, batch_size=50_000))
        CREATED.remove(database)  # kept for the next run: `make bench-clean` drops it
        console.print(
            f"  projected in {report.seconds:.0f} s; reuse: BENCH_QUERY_DATABASE={database}"
        )
    api = ApiProcess(database, Path(tempfile.mkdtemp()), SECRET)
    api.start()
    token = sign(ORG, SECRET)
    figures: dict[str, float] = {}
    try:
        for name, path in ENDPOINTS.items():
            result = wrk(api.base_url + path, token)
            console.print(
                f"  {name:17} p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
                f"{result['requests_per_s']:8.0f} req/s"
            )
            figures |= {f"{name}_{key}": round(value, 2) for key, value in result.items()}
    finally:
        api.stop()
    figures["p99_ms_max"] = max(v for k, v in figures.items() if k.endswith("_p99_ms"))
    console.print(f"  worst p99: [bold]{figures['p99_ms_max']:.2f} ms[/bold]")
    return figures
