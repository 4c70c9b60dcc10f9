"""Re-settling: a subscription period that arrives after the usage it governs.

Two figures. First, one organization with BENCH_RESETTLE_EVENTS module
executions already projected in a month receives that month's period_started
last: the time of the one batch that moves them all. Second, a renewal storm:
BENCH_RESETTLE_ORGS organizations, each with a little usage, all renewing at the
same midnight: the time to project every renewal. The store is filled with SQL
and projected by a rebuild first; only the subscription events are timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console

from bench.ingest import fresh_database
from bench.rebuild import SEED
from deploy.stack.local import LocalStack
from services.infra import database
from services.projector.projection import prepare_connection, project_batch
from services.projector.rebuild import rebuild

EVENTS = int(os.environ.get("BENCH_RESETTLE_EVENTS", "1000000"))
ORGANIZATIONS = int(os.environ.get("BENCH_RESETTLE_ORGS", "10000"))
START = datetime(2026, 10, 1, tzinfo=UTC)
console = Console()

SUBSCRIPTION = """
INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256)
SELECT 'billing', 'sub-' || org, 'com.metering.subscription.period_started.v1',
       org, $2::timestamptz,
       jsonb_build_object('organization_id', org, 'plan', 'pro', 'plan_credits', '5000',
                          'period_start', $2::timestamptz, 'period_end', $3::timestamptz,
                          'timezone', 'Europe/Prague'),
       '\\x00'
FROM unnest($1::text[]) AS org
"""


async def seed(url: str, events: int, organizations: int) -> None:
    connection = await database.connect(url)
    try:
        step = 1_000_000
        for first in range(0, events, step):
            last = min(first + step, events) - 1
            await connection.execute(SEED, first, last, START, organizations, 30 * 86400)
        await connection.execute("VACUUM ANALYZE events")
    finally:
        await connection.close()


async def subscribe_and_project(url: str, organizations: list[str]) -> tuple[float, int]:
    """Append one period_started per organization, project them all; seconds and batches."""
    connection = await database.connect(url)
    try:
        await prepare_connection(connection)
        await connection.execute(SUBSCRIPTION, organizations, START, START + timedelta(days=30))
        started = time.perf_counter()
        batches = 0
        while await project_batch(connection, 5000) is not None:
            batches += 1
        return time.perf_counter() - started, batches
    finally:
        await connection.close()


async def one_organization(url: str) -> float:
    await seed(url, EVENTS, 1)
    await rebuild(url, batch_size=50_000)
    seconds, _ = await subscribe_and_project(url, ["org-0"])
    connection = await database.connect(url)
    try:
        moved = await connection.fetchval(
            "SELECT credits_used FROM billing_periods WHERE subscribed AND period_start = $1",
            START,
        )
        phantoms = await connection.fetchval(
            "SELECT count(*) FROM billing_periods WHERE NOT subscribed"
        )
    finally:
        await connection.close()
    if not moved or phantoms:
        raise RuntimeError(f"not re-settled: {moved} credits moved, {phantoms} stand-ins left")
    return seconds


async def renewal_storm(url: str) -> tuple[float, int]:
    await seed(url, ORGANIZATIONS * 10, ORGANIZATIONS)  # ten events each
    await rebuild(url, batch_size=50_000)
    return await subscribe_and_project(url, [f"org-{n}" for n in range(ORGANIZATIONS)])


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    console.print(f"one organization, {EVENTS:,} events projected, then its period_started ...")
    one_s = asyncio.run(one_organization(fresh_database(endpoints.database_url)))
    console.print(
        f"  [bold]{one_s:.2f} s[/bold] to re-settle {EVENTS:,} events ({EVENTS / one_s:,.0f}/s)"
    )
    console.print(f"renewal storm: {ORGANIZATIONS:,} organizations renewing at once ...")
    storm_s, batches = asyncio.run(renewal_storm(fresh_database(endpoints.database_url)))
    console.print(
        f"  [bold]{storm_s:.2f} s[/bold] for {ORGANIZATIONS:,} renewals in {batches:,} batches"
    )
    figures = {
        "resettle_one_organization_s": round(one_s, 3),
        "resettle_events": EVENTS,
        "resettle_events_per_s": round(EVENTS / one_s),
        "renewal_storm_s": round(storm_s, 3),
        "renewal_storm_organizations": ORGANIZATIONS,
        "renewal_storm_batches": batches,
    }
    console.print(json.dumps(figures))
    return figures
