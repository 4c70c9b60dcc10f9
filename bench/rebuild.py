"""Rebuild throughput: every read model from position 0 over a large event store.

The store is filled directly with SQL (generate_series), not through ingest:
this measures the projection, and seeding 10M events through Kafka would take
longer than the rebuild itself. The history: module executions over 92 days
for 10k organizations, 20 scenarios each, runs of 10 modules.

Beside it, in the same run over the same store, the peer a team would reach
for: PostgreSQL materialized views of two of the same aggregates (credits per
organization and day, per run and module), timed by REFRESH MATERIALIZED VIEW.
They have no live updates, corrections, periods or checkpoints; the ratio says
what those cost. The same two aggregates are also computed by DuckDB (pinned with
the PostgreSQL extension from the `duckdb-ext-postgres` wheel, loaded from disk
since the machine is offline): it reads the store through its PostgreSQL
scanner, aggregates and writes the table back into PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from importlib.resources import files

import asyncpg
import duckdb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from bench.ingest import fresh_database
from deploy.stack.local import LocalStack
from services.projector.rebuild import rebuild

EVENTS = int(os.environ.get("BENCH_REBUILD_EVENTS", "10000000"))
PARALLEL = int(os.environ.get("BENCH_REBUILD_PARALLEL", "2"))
console = Console()

EXECUTION_DATA = """jsonb_build_object(
           'organization_id', org, 'scenario_id', 'scn-' || (i / 10 % 20),
           'run_id', 'run-' || (i / 10), 'module_id', (i % 10)::text, 'app', 'openai',
           'action', 'createCompletion', 'operations', 1,
           'credits', ((i % 999983)::numeric / 1000000)::text,
           'started_at', t, 'finished_at', t, 'status', 'success')"""
"""Event i's module execution at time t, of organization org (SEED, bench/growth.py)."""

SEED = f"""
INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256)
SELECT 'bench', 'e-' || i, 'com.metering.module_execution.completed.v2', org, t,
       {EXECUTION_DATA},
       '\\x00'
FROM (
    SELECT i, 'org-' || (i / 10 % $4) AS org,
           $3::timestamptz + (i % $5) * interval '1 second' AS t
    FROM generate_series($1::bigint, $2::bigint) AS i
) s
"""


async def seed(
    database: str, events: int = EVENTS, start: datetime = datetime(2026, 8, 1, tzinfo=UTC)
) -> float:
    """Fill the store with `events` module executions over the 92 days from `start`.

    SEED's parameters: first and last event number, start, organizations, seconds spanned.
    """
    connection = await asyncpg.connect(database)
    started = time.perf_counter()
    try:
        step = 1_000_000
        for first in range(0, events, step):
            last = min(first + step, events) - 1
            await connection.execute(SEED, first, last, start, 10_000, 92 * 86400)
            console.print(f"  seeded {min(first + step, events):,} events")
        await connection.execute("VACUUM ANALYZE events")
    finally:
        await connection.close()
    return time.perf_counter() - started


PEER_VIEWS = {
    "organization_day": """
        SELECT organization_id, (time AT TIME ZONE 'UTC')::date AS day,
               sum((data->>'credits')::numeric) AS credits, count(*) AS executions
        FROM events WHERE type LIKE 'com.metering.module_execution.completed.%'
        GROUP BY 1, 2""",
    "run_module": """
        SELECT organization_id, data->>'run_id' AS run_id, data->>'module_id' AS module_id,
               sum((data->>'credits')::numeric) AS credits, count(*) AS executions
        FROM events WHERE type LIKE 'com.metering.module_execution.completed.%'
        GROUP BY 1, 2, 3""",
}


DUCKDB_VIEWS = {
    "organization_day": (
        "SELECT organization_id, (time AT TIME ZONE 'UTC')::date AS day, "
        "(data->>'credits')::numeric(30,6) AS credits FROM events "
        "WHERE type LIKE 'com.metering.module_execution.completed.%'",
        "organization_id, day",
    ),
    "run_module": (
        "SELECT organization_id, data->>'run_id' AS run_id, data->>'module_id' AS module_id, "
        "(data->>'credits')::numeric(30,6) AS credits FROM events "
        "WHERE type LIKE 'com.metering.module_execution.completed.%'",
        "organization_id, run_id, module_id",
    ),
}
"""For each view: what DuckDB asks PostgreSQL for (its JSON operators on text were 13x
slower than PostgreSQL's on jsonb here, so the fields are extracted where they are
stored, as a team would), and the grouping DuckDB does."""


def duckdb_peers(database: str, events: int) -> dict[str, float]:
    """Events/s of DuckDB reading the store, aggregating and writing each table back."""
    connection = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    rates: dict[str, float] = {}
    try:
        platform = connection.execute("PRAGMA platform").fetchone()
        extension = (
            files("duckdb_ext")
            / f"extensions/v{duckdb.__version__}/{platform[0] if platform else ''}"
            / "postgres_scanner.duckdb_extension"
        )
        connection.execute(f"LOAD '{extension}'")
        connection.execute(f"ATTACH '{database}' AS pg (TYPE postgres)")
        for name, (query, keys) in DUCKDB_VIEWS.items():
            started = time.perf_counter()
            connection.execute(
                f"CREATE TABLE pg.public.duckdb_{name} AS "
                f"SELECT {keys}, sum(credits) AS credits, count(*) AS executions "
                f"FROM postgres_query('pg', ?) GROUP BY ALL",
                [query],
            )
            rates[name] = events / (time.perf_counter() - started)
    finally:
        connection.close()
    return rates


async def refresh_peers(database: str, events: int) -> dict[str, float]:
    """Events/s of REFRESH MATERIALIZED VIEW for each peer view, over the same store."""
    connection = await asyncpg.connect(database)
    rates: dict[str, float] = {}
    try:
        for name, query in PEER_VIEWS.items():
            view = f"peer_{name}"
            await connection.execute(f"CREATE MATERIALIZED VIEW {view} AS {query} WITH NO DATA")
            started = time.perf_counter()
            await connection.execute(f"REFRESH MATERIALIZED VIEW {view}")
            rates[name] = events / (time.perf_counter() - started)
    finally:
        await connection.close()
    return rates


TOTALS = {
    "organization_day": "organization_daily_usage",
    "run_module": "run_modules",
}
"""Each peer's aggregate, and our read model that holds the same rows."""


async def check_totals(database: str) -> None:
    """Every peer's table and ours hold the same rows and credits, or the figures are void."""
    connection = await asyncpg.connect(database)
    try:
        for name, ours in TOTALS.items():
            totals = "SELECT count(*), sum(c) FROM {}"
            found = {
                table: tuple(await connection.fetchrow(totals.format(table)) or ())
                for table in (
                    f"(SELECT credits_used AS c FROM {ours}) o",
                    f"(SELECT credits AS c FROM peer_{name}) m",
                    f"(SELECT credits AS c FROM duckdb_{name}) d",
                )
            }
            if len(set(found.values())) != 1:
                raise SystemExit(f"{name}: rows and credits differ: {found}")
    finally:
        await connection.close()


def rebuild_with_progress(database: str) -> float:
    """Rebuild every read model of `database` (swapped in); events/s."""
    with Progress(
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("rebuilding", total=EVENTS)
        report = asyncio.run(
            rebuild(
                database,
                parallel=PARALLEL,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        )
    console.print(
        f"  [bold]{report.events / report.seconds:,.0f} events/s[/bold]: "
        f"{report.events:,} events in {report.seconds:.1f} s"
    )
    return report.events / report.seconds


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    database = fresh_database(endpoints.database_url)
    console.print(f"seeding {EVENTS:,} events ...")
    seed_s = asyncio.run(seed(database))
    console.print(f"  seeding took {seed_s:.0f} s")
    rate = rebuild_with_progress(database)
    peers = {
        **{f"matview_{n}": r for n, r in asyncio.run(refresh_peers(database, EVENTS)).items()},
        **{f"duckdb_{n}": r for n, r in duckdb_peers(database, EVENTS).items()},
    }
    asyncio.run(check_totals(database))
    for name, peer_rate in peers.items():
        console.print(
            f"  peer {name}: {peer_rate:,.0f} events/s (ours / it: {rate / peer_rate:.3f})"
        )
    return {
        "events_per_s": round(rate),
        "parallel": PARALLEL,
        "events": EVENTS,
        **{f"peer_{name}_events_per_s": round(r) for name, r in peers.items()},
        **{f"ratio_vs_{name}": round(rate / r, 3) for name, r in peers.items()},
    }
