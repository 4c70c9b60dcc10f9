"""Growth: what the service costs as the event store grows (1M, 10M, 30M events).

One database grows through the sizes in BENCH_GROWTH_SIZES. The store is
filled with SQL (10,000 organizations, 20 scenarios each, runs of 10 modules,
spread over the last 365 days and stored in the month they happened, so every
size has twelve monthly partitions; and a year of monthly subscription periods
per organization). At each size, on the same machine in one run:

- bytes per stored event (the partitions with their indexes, and event_keys);
- rebuild: every read model from position 0 (which also brings them up to date);
- append rate: PROBE fresh events through the recorder, 5,000 per batch;
- live projection rate: those events projected by the live projection's batches;
- freshness p99: events appended at a fixed rate while a projector loop runs,
  seconds from stored to projected;
- re-settling one organization: a period re-sent with another end, projected;
- API p99 per endpoint at a fixed request rate (open loop: a request is timed from
  when it was due, so a slow answer delays none of the next ones), the median of three
  rounds, after the read models are vacuumed and a checkpoint; and /readyz.

Writes bench/results/growth.json and draws bench/results/growth.png; `make bench
B=growth` copies the picture to docs/growth.png, which the README shows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median, quantiles

import httpx
from rich.console import Console

from bench.ingest import fresh_database, record_value
from bench.query import ENDPOINTS, SECRET
from bench.rebuild import EXECUTION_DATA
from deploy.stack.local import LocalStack
from services import event_store, partitions
from services.infra import database
from services.ingest.decoding import Limits, decode
from services.ingest.recorder import append, prepare_connection
from services.ingest.records import NewEvent, RawRecord, RecordOrigin
from services.projector.projection import PROJECTION, READ_MODELS
from services.projector.projection import prepare_connection as prepare_projector
from services.projector.quarantine import project_next
from services.projector.rebuild import rebuild
from services.query_api.auth import sign
from tests.support.processes import ApiProcess

SIZES = [
    int(n) for n in os.environ.get("BENCH_GROWTH_SIZES", "1000000,10000000,30000000").split(",")
]
PROBE = int(os.environ.get("BENCH_GROWTH_PROBE_EVENTS", "100000"))
FRESHNESS_RATE = int(os.environ.get("BENCH_GROWTH_FRESHNESS_RATE", "2000"))
FRESHNESS_SECONDS = int(os.environ.get("BENCH_GROWTH_FRESHNESS_SECONDS", "15"))
API_RATE = int(os.environ.get("BENCH_GROWTH_API_RATE", "200"))
API_SECONDS = int(os.environ.get("BENCH_GROWTH_API_SECONDS", "5"))
ORGANIZATIONS = 10_000
YEAR_S = 365 * 86400
PICTURE = Path(__file__).resolve().parent / "results" / "growth.png"
DOCS_PICTURE = Path(__file__).resolve().parent.parent / "docs" / "growth.png"
console = Console()

# Event i: organization org-(i/10 % 10000), scenario scn-(i/10 % 20), run run-(i/10) of ten
# modules (bench/query.py's endpoints name some). A run's time is spread over the year by a
# multiplicative hash of its number; the event is stored (recorded_at) a few seconds later.
SEED = f"""
INSERT INTO events (source, id, type, organization_id, time, recorded_at, data, payload_sha256)
SELECT 'bench', 'e-' || i, 'com.metering.module_execution.completed.v2', org, t,
       t + interval '3 seconds', {EXECUTION_DATA}, '\\x00'
FROM (
    SELECT i, 'org-' || (i / 10 % 10000) AS org,
           $3::timestamptz + ((i / 10 * 2654435761) % $4) * interval '1 second'
               + (i % 10) * interval '1 second' AS t
    FROM generate_series($1::bigint, $2::bigint) AS i
) s
"""

# Twelve monthly periods per organization, each starting on the organization's own day.
PERIODS = """
INSERT INTO events (source, id, type, organization_id, time, recorded_at, data, payload_sha256)
SELECT 'billing', 'sub-' || org || '-' || k, 'com.metering.subscription.period_started.v1',
       org, ps, ps,
       jsonb_build_object('organization_id', org, 'plan', 'pro', 'plan_credits', '100000',
                          'period_start', ps, 'period_end', ps + interval '1 month',
                          'timezone', 'UTC'),
       '\\x00'
FROM (
    SELECT 'org-' || o AS org, k,
           $1::timestamptz + (o % 28) * interval '1 day' + k * interval '1 month' AS ps
    FROM generate_series(0, $2 - 1) AS o, generate_series(0, 11) AS k
) s
"""

RESEND_PERIOD = """
INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256)
SELECT 'billing', 'resent-' || $2::text, 'com.metering.subscription.period_started.v1',
       'org-0', $1::timestamptz,
       jsonb_build_object('organization_id', 'org-0', 'plan', 'pro', 'plan_credits', '100000',
                          'period_start', $1::timestamptz,
                          'period_end', $1::timestamptz + interval '45 days', 'timezone', 'UTC'),
       '\\x00'
"""

SIZE_OF_STORE = """
SELECT (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('events')) AS events,
       (SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('events')) AS heap,
       pg_total_relation_size('event_keys') AS keys,
       (SELECT count(*) FROM events) AS count
"""


def year_start() -> datetime:
    return (datetime.now(UTC) - timedelta(seconds=YEAR_S)).replace(microsecond=0)


async def grow(url: str, start: int, stop: int, first: datetime) -> float:
    """Seed events start..stop-1 (and the periods, at the first size); seconds taken."""
    connection = await database.connect(url)
    began = time.perf_counter()
    try:
        await partitions.ensure_partitions(connection, since=first)
        if start == 0:
            await connection.execute(PERIODS, first, ORGANIZATIONS)
        step = 1_000_000
        for low in range(start, stop, step):
            high = min(low + step, stop) - 1
            await connection.execute(SEED, low, high, first, YEAR_S - 86400)
            console.print(f"  seeded {high + 1:,} events")
        await connection.execute("VACUUM ANALYZE events")
        await connection.execute("VACUUM ANALYZE event_keys")
    finally:
        await connection.close()
    return time.perf_counter() - began


async def bytes_per_event(url: str) -> dict[str, float]:
    connection = await database.connect(url)
    try:
        row = await connection.fetchrow(SIZE_OF_STORE)
        assert row is not None
    finally:
        await connection.close()
    count = int(row["count"])
    return {
        "bytes_per_event": round(int(row["events"] + row["keys"]) / count, 1),
        "bytes_per_event_heap": round(int(row["heap"]) / count, 1),
        "bytes_per_event_keys": round(int(row["keys"]) / count, 1),
        "events_stored": count,
    }


def probe_events(first: int, count: int) -> list[NewEvent]:
    """`count` module executions of now, decoded as ingest would (ids from `first`)."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    events = []
    for i in range(first, first + count):
        key, value = record_value(i, stamp)
        record = RawRecord(RecordOrigin("growth", 0, i), key, value.replace(b'"e-', b'"g-'), ())
        event = decode(record, now, Limits())
        assert isinstance(event, NewEvent), event
        events.append(event)
    return events


async def append_and_project(url: str, events: list[NewEvent]) -> dict[str, float]:
    """Append rate, then live projection rate, of `events`."""
    connection = await database.connect(url)
    try:
        await prepare_connection(connection)
        await prepare_projector(connection)
        began = time.perf_counter()
        for i in range(0, len(events), 5000):
            await append(connection, events[i : i + 5000], [])
        appended = time.perf_counter() - began
        began = time.perf_counter()
        projected = 0
        while (result := await project_next(connection, 5000)) is not None:
            projected += result.events
        projecting = time.perf_counter() - began
    finally:
        await connection.close()
    return {
        "append_events_per_s": round(len(events) / appended),
        "projection_events_per_s": round(projected / projecting),
    }


async def freshness_p99(url: str, events: list[NewEvent]) -> float:
    """Append `events` at FRESHNESS_RATE per second while a projector keeps up; the p99 of
    seconds from stored to projected."""
    writer = await database.connect(url)
    projector = await database.connect(url)
    await prepare_connection(writer)
    await prepare_projector(projector)
    ages: list[float] = []
    done = asyncio.Event()

    async def project() -> None:
        while True:
            result = await project_next(projector, 5000)
            if result is not None:
                ages.extend(since_stored for _, since_stored in result.ages_s)
            elif done.is_set() and await event_store.all_caught_up(projector, PROJECTION):
                return
            else:
                await asyncio.sleep(0.05)

    projecting = asyncio.create_task(project())
    try:
        per_tick = max(1, FRESHNESS_RATE // 10)
        began = time.perf_counter()
        for tick, i in enumerate(range(0, len(events), per_tick)):
            await asyncio.sleep(max(0.0, began + tick / 10 - time.perf_counter()))
            await append(writer, events[i : i + per_tick], [])
        done.set()
        await projecting
    finally:
        await writer.close()
        await projector.close()
    return round(quantiles(ages, n=100)[98], 3)


async def resettle_one_organization(url: str, size: int) -> float:
    """Seconds to project a period of org-0 re-sent with another end (its usage moves)."""
    connection = await database.connect(url)
    try:
        await prepare_projector(connection)
        period_start = await connection.fetchval(
            "SELECT max(period_start) FROM billing_periods WHERE organization_id = 'org-0'"
            " AND subscribed AND period_start < now() - interval '60 days'"
        )
        await connection.execute(RESEND_PERIOD, period_start, str(size))
        began = time.perf_counter()
        while await project_next(connection, 5000) is not None:
            pass
        return round(time.perf_counter() - began, 3)
    finally:
        await connection.close()


async def settle_down(url: str) -> None:
    """Vacuum the read models and checkpoint: the API is measured in the steady state of a
    store of this size, not under the autovacuum and checkpoint the bulk load set off."""
    connection = await database.connect(url)
    try:
        await connection.execute(f"VACUUM ANALYZE {', '.join(READ_MODELS)}")
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


async def open_loop(client: httpx.AsyncClient, url: str, token: str) -> list[float]:
    """GET `url` API_RATE times a second for API_SECONDS, each timed from when it was due."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}

    async def one(due: float) -> None:
        response = await client.get(url, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
        latencies.append((time.perf_counter() - due) * 1000)

    began = time.perf_counter()
    requests = []
    for n in range(API_RATE * API_SECONDS):
        due = began + n / API_RATE
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        requests.append(asyncio.create_task(one(due)))
    await asyncio.gather(*requests)
    return latencies


async def api_latencies(base_url: str) -> dict[str, float]:
    token = sign("org-1234", SECRET)
    figures: dict[str, float] = {}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        for name, path in ENDPOINTS.items():
            await open_loop(client, path, token)  # warm: plans, caches, connections
            rounds = [quantiles(await open_loop(client, path, token), n=100)[98] for _ in "abc"]
            figures[f"api_{name}_p99_ms"] = round(median(rounds), 2)  # one stall is not a trend
        readyz = []
        for _ in range(20):
            began = time.perf_counter()
            (await client.get("/readyz")).raise_for_status()
            readyz.append((time.perf_counter() - began) * 1000)
        figures["readyz_ms"] = round(median(readyz), 2)
    endpoints = [v for k, v in figures.items() if k.endswith("_p99_ms")]
    figures["api_p99_ms_max"] = max(endpoints)
    figures["api_p99_ms_median"] = round(median(endpoints), 2)
    return figures


def measure(url: str, size: int) -> dict[str, float]:
    """Every figure at the store's current size."""
    figures = asyncio.run(bytes_per_event(url))
    console.print(f"  {figures['bytes_per_event']:.0f} bytes per stored event")
    report = asyncio.run(rebuild(url, parallel=2))
    figures["rebuild_s"] = round(report.seconds, 1)
    figures["rebuild_events_per_s"] = round(report.events / report.seconds)
    console.print(f"  rebuild {report.seconds:.0f} s ({figures['rebuild_events_per_s']:,} ev/s)")
    figures |= asyncio.run(append_and_project(url, probe_events(size * 10, PROBE)))
    fresh = probe_events(size * 10 + PROBE, FRESHNESS_RATE * FRESHNESS_SECONDS)
    figures["freshness_p99_s"] = asyncio.run(freshness_p99(url, fresh))
    figures["resettle_one_organization_s"] = asyncio.run(resettle_one_organization(url, size))
    asyncio.run(settle_down(url))
    api = ApiProcess(url, Path(tempfile.mkdtemp()), SECRET)
    api.start()
    try:
        figures |= asyncio.run(api_latencies(api.base_url))
    finally:
        api.stop()
    console.print(f"  {figures}")
    return figures


def label(size: int) -> str:
    return f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size // 1000}k"


CURVES = (
    ("append_events_per_s", "append, events/s"),
    ("projection_events_per_s", "live projection, events/s"),
    ("api_p99_ms_max", f"API p99 at {API_RATE} req/s, ms: worst and median endpoint"),
    ("freshness_p99_s", f"freshness p99 at {FRESHNESS_RATE} events/s, s"),
    ("rebuild_s", "rebuild, s"),
    ("bytes_per_event", "bytes per stored event"),
)


def draw(sizes: list[int], by_size: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    for axis, (key, title) in zip(axes.flat, CURVES, strict=True):
        axis.plot(sizes, [figures[key] for figures in by_size], marker="o")
        if key == "api_p99_ms_max":
            axis.plot(sizes, [figures["api_p99_ms_median"] for figures in by_size], marker="s")
        axis.set_xscale("log")
        axis.set_xticks(sizes, [label(size) for size in sizes])
        axis.minorticks_off()
        axis.set_ylim(bottom=0)
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    figure.suptitle("Growth: the same service as the event store grows (2 cores, one run)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    url = fresh_database(endpoints.database_url)
    first = year_start()
    figures: dict[str, float] = {}
    by_size = []
    stored = 0
    for size in SIZES:
        console.print(f"growing the store to {size:,} events ...")
        seconds = asyncio.run(grow(url, stored, size, first))
        console.print(f"  seeded in {seconds:.0f} s")
        stored = size
        at = measure(url, size)
        by_size.append(at)
        figures |= {f"{label(size)}_{key}": value for key, value in at.items()}
    low, high = by_size[0], by_size[-1]
    figures["events"] = SIZES[-1]
    figures["bytes_per_event_last"] = high["bytes_per_event"]
    for key in ("append_events_per_s", "projection_events_per_s", "api_p99_ms_max"):
        figures[f"{key}_ratio_last_to_first"] = round(high[key] / low[key], 3)
    draw(SIZES, by_size, PICTURE)
    DOCS_PICTURE.parent.mkdir(exist_ok=True)
    shutil.copyfile(PICTURE, DOCS_PICTURE)
    console.print(f"  the curve: {PICTURE} (and {DOCS_PICTURE}, which the README shows)")
    return figures
