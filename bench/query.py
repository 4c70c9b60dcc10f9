"""Query API: each endpoint's maximum throughput and its latency at a fixed arrival rate,
beside Platformatic DB serving the same read models, in one run.

The history (BENCH_REBUILD_EVENTS, 10M by default, over 10k organizations, the last
92 days) is seeded into the store by SQL and projected by a rebuild (the real
projection); BENCH_QUERY_DATABASE reuses a database an earlier run filled. The API
runs as `metering api run` with BENCH_QUERY_WORKERS worker processes. Each endpoint
then gets, one after the other:

- **maximum throughput**: wrk, 32 connections, BENCH_QUERY_SECONDS (closed loop: each
  connection sends its next request when the last is answered);
- **latency at a fixed rate**: vegeta at BENCH_QUERY_RATE requests/s (1,000) for
  BENCH_QUERY_SECONDS, open loop (requests leave on schedule however slow the answers,
  so a slow server is not hidden by a load generator that waits for it): p50, p99 and
  p99.9 of every request sent, and how many failed.

Each endpoint is asked the same URL again and again, as a dashboard polls: ours
answers all but each worker's first from its answer cache (services/query_api/
answers.py; `answers_kept_share` says how many). What a first request costs is
measured apart: **uncached**, the maximum throughput of each endpoint again with the
cache off (METERING_API_ANSWER_CACHE_MB=0), `<endpoint>_uncached_max_rps`.

The peer (bench/_platformatic.py) gets the same two measurements on the endpoints it
has an equivalent for; `peer_<endpoint>_rps_ratio` is ours ÷ its maximum throughput
and `peer_<endpoint>_p99_ratio` ours ÷ its p99 at the fixed rate;
`peer_<endpoint>_uncached_rps_ratio` is ours uncached ÷ its maximum throughput. It verifies no
token; ours verifies one on every request. Everything runs on this machine: the load
generators take CPU from the servers, as they do for both.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from rich.console import Console

from bench import _platformatic
from bench.ingest import CREATED, fresh_database
from bench.rebuild import EVENTS, seed
from deploy.stack.local import LocalStack
from services.projector.rebuild import rebuild
from services.query_api.auth import sign
from tests.support.processes import ApiProcess

SECONDS = int(os.environ.get("BENCH_QUERY_SECONDS", "10"))
RATE = int(os.environ.get("BENCH_QUERY_RATE", "1000"))
SETTLE_S = 5.0
"""A pause after each measurement: an overloaded server drains what it queued before
the next one starts (else the next endpoint's figures carry this one's backlog)."""
WORKERS = int(os.environ.get("BENCH_QUERY_WORKERS", "2"))
SECRET = "bench-secret-long-enough-for-hs256-signing!"  # noqa: S105 (a throwaway local key)
VEGETA = "github.com/tsenart/vegeta/v12@v12.13.0"
TOOLS = Path(__file__).resolve().parents[1] / ".stack" / "bench-tools"
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


def vegeta() -> Path:
    """vegeta (the open-loop load generator), built once into .stack/bench-tools/bin."""
    binary = TOOLS / "bin" / "vegeta"
    if not binary.exists():
        if shutil.which("go") is None:
            raise SystemExit("vegeta needs Go to build: install Go (https://go.dev/dl/)")
        console.print(f"building {VEGETA} ...")
        env = {**os.environ, "GOBIN": str(binary.parent), "GOFLAGS": "-mod=mod"}
        subprocess.run(["go", "install", VEGETA], env=env, check=True)
    return binary


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, token: str | None, seconds: int = SECONDS) -> dict[str, float]:
    """p50, p99 (ms) and requests/s of one endpoint at 32 connections (closed loop)."""
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", *auth, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    percentiles = {p: _ms(value, unit) for p, value, unit in found}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} failed responses")
    return {"p50_ms": percentiles["50"], "p99_ms": percentiles["99"], "requests_per_s": rate}


def fixed_rate(url: str, token: str | None, rate: int = RATE) -> dict[str, float]:
    """p50, p99, p99.9 (ms) of every request sent at `rate`/s for SECONDS (open loop),
    and how many were not answered 200."""
    headers = ["-header", f"Authorization: Bearer {token}"] if token else []
    attack = subprocess.run(
        [str(vegeta()), "attack", f"-rate={rate}/s", f"-duration={SECONDS}s", *headers],
        input=f"GET {url}\n".encode(),
        capture_output=True,
        check=True,
    ).stdout
    encoded = subprocess.run(
        [str(vegeta()), "encode", "--to", "csv"], input=attack, capture_output=True, check=True
    ).stdout.decode()
    rows = list(csv.reader(io.StringIO(encoded)))
    latencies = sorted(int(row[2]) / 1e6 for row in rows)  # ns -> ms
    cuts = statistics.quantiles(latencies, n=1000, method="inclusive")
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": cuts[989],
        "p999_ms": cuts[998],
        "failed": sum(row[1] != "200" for row in rows),
        "sent": len(rows),
    }


def measure(name: str, url: str, token: str | None) -> dict[str, float]:
    """The measurements of one endpoint, printed and keyed for the results: the most
    it serves, its latency at RATE/s, and at half that (below saturation if it can
    serve RATE/s at all)."""
    most = wrk(url, token)
    time.sleep(SETTLE_S)
    steady = fixed_rate(url, token)
    time.sleep(SETTLE_S)
    half = fixed_rate(url, token, RATE // 2)
    time.sleep(SETTLE_S)
    console.print(
        f"  {name:17} max {most['requests_per_s']:6.0f} req/s (c32 p99 {most['p99_ms']:6.1f})"
        f"  at {RATE}/s p50 {steady['p50_ms']:6.2f} p99 {steady['p99_ms']:7.2f}"
        f" p99.9 {steady['p999_ms']:7.2f} failed {steady['failed']:.0f}"
        f"  at {RATE // 2}/s p99 {half['p99_ms']:6.2f} ms"
    )
    return {
        "max_rps": most["requests_per_s"],
        "c32_p99_ms": most["p99_ms"],
        **{key: value for key, value in steady.items() if key != "sent"},
        "p99_ms_at_half_rate": half["p99_ms"],
    }


def filled_database() -> str:
    """BENCH_QUERY_DATABASE, or a new database seeded and projected (kept for reuse)."""
    database = os.environ.get("BENCH_QUERY_DATABASE")
    if database is not None:
        return database
    database = fresh_database(LocalStack().up().database_url)
    console.print(f"seeding {EVENTS:,} events over 10,000 organizations ...")
    asyncio.run(seed(database, start=datetime.now(UTC) - timedelta(days=92)))
    console.print("projecting them (rebuild) ...")
    report = asyncio.run(rebuild(database, batch_size=50_000))
    CREATED.remove(database)  # kept for the next run: `make bench-clean` drops it
    console.print(f"  projected in {report.seconds:.0f} s; reuse: BENCH_QUERY_DATABASE={database}")
    return database


def ours(database: str) -> tuple[dict[str, dict[str, float]], float]:
    """Each endpoint's figures (answer cache on), and the share of answers it gave."""
    api = ApiProcess(
        database, Path(tempfile.mkdtemp()), SECRET, {"METERING_API_WORKERS": str(WORKERS)}
    )
    api.start()
    token = sign(ORG, SECRET)
    console.print(f"our API, {WORKERS} worker process(es):")
    try:
        wrk(api.base_url + ENDPOINTS["usage"], token, seconds=3)  # workers up, pools filled
        figures = {
            name: measure(name, api.base_url + path, token) for name, path in ENDPOINTS.items()
        }
        answers = api.metrics()
    finally:
        api.stop()
    kept = answers.get('api_answers_total{outcome="kept"}', 0)
    given = kept + sum(answers.get(f'api_answers_total{{outcome="{o}"}}', 0) for o in OUTCOMES)
    return figures, kept / given if given else 0.0


OUTCOMES = ("queried", "not_modified")


def uncached(database: str) -> dict[str, float]:
    """Each endpoint's maximum throughput with no answer kept: every request queried."""
    env = {"METERING_API_WORKERS": str(WORKERS), "METERING_API_ANSWER_CACHE_MB": "0"}
    api = ApiProcess(database, Path(tempfile.mkdtemp()), SECRET, env)
    api.start()
    token = sign(ORG, SECRET)
    console.print("our API, answer cache off:")
    figures = {}
    try:
        wrk(api.base_url + ENDPOINTS["usage"], token, seconds=3)
        for name, path in ENDPOINTS.items():
            most = wrk(api.base_url + path, token)
            time.sleep(SETTLE_S)
            console.print(
                f"  {name:17} max {most['requests_per_s']:6.0f} req/s"
                f" (c32 p99 {most['p99_ms']:6.1f} ms)"
            )
            figures[name] = most["requests_per_s"]
    finally:
        api.stop()
    return figures


def peer(database: str) -> dict[str, dict[str, float]]:
    _platformatic.prepare(database)
    console.print(f"peer: Platformatic DB {_platformatic.VERSION}, same tables (no token):")
    paths = _platformatic.comparable(datetime.now(UTC), ORG, SCENARIO, RUN)
    with _platformatic.serve(database) as base:
        wrk(base + paths["run"], None, seconds=3)  # warmed up like ours
        return {
            name: measure(name, base + path, None)
            for name, path in paths.items()
            if name in ENDPOINTS
        }


def main() -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run deploy/install-system-deps.sh")
    vegeta()
    _platformatic.install()
    database = filled_database()
    (mine, kept), first, theirs = ours(database), uncached(database), peer(database)
    with psycopg.connect(database) as connection:
        stored = connection.execute("SELECT count(*) FROM events").fetchone()
    figures: dict[str, float] = {
        "events": stored[0] if stored else 0,
        "fixed_rate_rps": RATE,
        "workers": WORKERS,
        "answers_kept_share": round(kept, 4),
    }
    for name, result in mine.items():
        figures |= {f"{name}_{key}": round(value, 2) for key, value in result.items()}
        figures[f"{name}_uncached_max_rps"] = round(first[name], 2)
    for name, result in theirs.items():
        figures |= {f"peer_{name}_{key}": round(value, 2) for key, value in result.items()}
        figures[f"peer_{name}_rps_ratio"] = round(mine[name]["max_rps"] / result["max_rps"], 2)
        figures[f"peer_{name}_uncached_rps_ratio"] = round(first[name] / result["max_rps"], 2)
        figures[f"peer_{name}_p99_ratio"] = round(mine[name]["p99_ms"] / result["p99_ms"], 2)
        half = mine[name]["p99_ms_at_half_rate"] / result["p99_ms_at_half_rate"]
        figures[f"peer_{name}_p99_ratio_at_half_rate"] = round(half, 2)
    figures["p99_ms_at_fixed_rate_max"] = round(max(r["p99_ms"] for r in mine.values()), 2)
    figures["max_rps_min"] = min(r["max_rps"] for r in mine.values())
    figures["uncached_max_rps_min"] = min(first.values())
    figures["peer_uncached_rps_ratio_min"] = min(
        figures[f"peer_{n}_uncached_rps_ratio"] for n in theirs
    )
    figures["peer_rps_ratio_min"] = min(figures[f"peer_{n}_rps_ratio"] for n in theirs)
    figures["peer_p99_ratio_max"] = max(figures[f"peer_{n}_p99_ratio"] for n in theirs)
    console.print(
        f"  worst p99 at {RATE}/s: [bold]{figures['p99_ms_at_fixed_rate_max']:.2f} ms[/bold];"
        f" slowest maximum: [bold]{figures['max_rps_min']:.0f} req/s[/bold];"
        f" vs peer: throughput x{figures['peer_rps_ratio_min']} at worst,"
        f" p99 x{figures['peer_p99_ratio_max']} at worst;"
        f" answers kept {figures['answers_kept_share']:.1%};"
        f" uncached: slowest {figures['uncached_max_rps_min']:.0f} req/s,"
        f" vs peer x{figures['peer_uncached_rps_ratio_min']} at worst"
    )
    return figures
