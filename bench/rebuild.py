"""Rebuild throughput: every read model from position 0 over a large event store.

The store is filled directly with SQL (generate_series), not through ingest:
this measures the projection, and seeding 10M events through Kafka would take
longer than the rebuild itself. The history: module executions over 92 days
for 10k organizations, 20 scenarios each, runs of 10 modules.

Beside it, in the same run over the same store, the peer a team would reach
for: PostgreSQL materialized views of two of the same aggregates (credits per
organization and day, per run and module), timed by REFRESH MATERIALIZED VIEW.
They have no live updates, corrections, periods or checkpoints; the ratio says
what those cost.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from bench.ingest import fresh_database
from deploy.stack.local import LocalStack
from services.projector.rebuild import rebuild

EVENTS = int(os.environ.get("BENCH_REBUILD_EVENTS", "10000000"))
PARALLEL = int(os.environ.get("BENCH_REBUILD_PARALLEL", "2"))
console = Console()

SEED = """
INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256)
SELECT 'bench', 'e-' || i, 'com.metering.module_execution.completed.v2', org, t,
       jsonb_build_object(
           'organization_id', org, 'scenario_id', 'scn-' || (i / 10 % 20),
           'run_id', 'run-' || (i / 10), 'module_id', (i % 10)::text, 'app', 'openai',
           'action', 'createCompletion', 'operations', 1,
           'credits', ((i % 999983)::numeric / 1000000)::text,
           'started_at', t, 'finished_at', t, 'status', 'success'),
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


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    database = fresh_database(endpoints.database_url)
    console.print(f"seeding {EVENTS:,} events ...")
    seed_s = asyncio.run(seed(database))
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
                batch_size=50_000,
                parallel=PARALLEL,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        )
    rate = report.events / report.seconds
    console.print(
        f"  [bold]{rate:,.0f} events/s[/bold]: {report.events:,} events in "
        f"{report.seconds:.1f} s (seeding took {seed_s:.0f} s)"
    )
    peers = asyncio.run(refresh_peers(database, report.events))
    for name, peer_rate in peers.items():
        console.print(
            f"  peer: REFRESH MATERIALIZED VIEW {name}: {peer_rate:,.0f} events/s "
            f"(ours / it: {rate / peer_rate:.2f})"
        )
    return {
        "events_per_s": round(rate),
        "parallel": PARALLEL,
        "events": report.events,
        "seconds": round(report.seconds, 1),
        **{f"peer_matview_{name}_events_per_s": round(r) for name, r in peers.items()},
        **{f"ratio_vs_matview_{name}": round(rate / r, 3) for name, r in peers.items()},
    }
