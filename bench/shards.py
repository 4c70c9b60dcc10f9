"""Projector scale-out: one process on one shard against two processes on two shards.

One store (seeded by SQL, as bench/rebuild.py does: module executions of 10k
organizations) is projected from position 0 by real projector processes:
first one process with `METERING_PROJECTOR_SHARDS=1`, then, after the read
models and checkpoints are emptied, two processes with 2 shards. Rounds are
taken in turn (1, 2, 1, 2 …) so a slower minute of the machine hits both. Each
round is timed from the processes' start to every shard caught up, and its
totals are checked against the store's.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from rich.console import Console

from bench.ingest import fresh_database
from bench.rebuild import seed
from deploy.stack.local import LocalStack
from services import event_store
from services.projector.projection import PROJECTION, READ_MODELS
from tests.support.processes import ProjectorProcess

EVENTS = int(os.environ.get("BENCH_SHARDS_EVENTS", "500000"))
ROUNDS = int(os.environ.get("BENCH_SHARDS_ROUNDS", "2"))
console = Console()

STORE_TOTAL = """
SELECT sum((data->>'credits')::numeric) FROM events
WHERE type LIKE 'com.metering.module_execution.completed.%'
"""


async def reset(database: str) -> None:
    connection = await asyncpg.connect(database)
    try:
        await connection.execute(
            f"TRUNCATE projection_checkpoints, projector_quarantine, {', '.join(READ_MODELS)}"
        )
    finally:
        await connection.close()


async def caught_up(database: str) -> bool:
    connection = await asyncpg.connect(database)
    try:
        return bool(await event_store.all_caught_up(connection, PROJECTION))
    finally:
        await connection.close()


async def check_totals(database: str) -> None:
    connection = await asyncpg.connect(database)
    try:
        projected = await connection.fetchval("SELECT sum(credits_used) FROM runs")
        stored = await connection.fetchval(STORE_TOTAL)
    finally:
        await connection.close()
    if projected != stored:
        raise AssertionError(f"projected {projected} credits, the store holds {stored}")


def project(database: str, shards: int, logs: Path) -> float:
    """Seconds for `shards` processes on `shards` shards to project the whole store."""
    asyncio.run(reset(database))
    processes = []
    for n in range(shards):
        (logs / str(n)).mkdir(parents=True, exist_ok=True)
        processes.append(
            ProjectorProcess(
                database, logs / str(n), batch_size=5000, shards=shards, lock_retry_s=0.5
            )
        )
    started = time.perf_counter()
    for process in processes:
        process.start()
    try:
        while not asyncio.run(caught_up(database)):
            for process in processes:
                if not process.alive():
                    raise RuntimeError(f"a projector died:\n{process.log()[-3000:]}")
            time.sleep(0.5)
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.stop()
    asyncio.run(check_totals(database))
    return seconds


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    database = fresh_database(endpoints.database_url)
    console.print(f"seeding {EVENTS:,} events ...")
    asyncio.run(seed(database, EVENTS))
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as logs:
        for round_ in range(ROUNDS):
            for shards in (1, 2):
                seconds = project(database, shards, Path(logs) / f"{round_}-{shards}")
                rates[shards].append(EVENTS / seconds)
                console.print(
                    f"  round {round_ + 1}, {shards} shard(s) in {shards} process(es): "
                    f"{EVENTS / seconds:,.0f} events/s ({seconds:.1f} s)"
                )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    console.print(
        f"  [bold]1 shard {one:,.0f} events/s, 2 shards {two:,.0f} events/s "
        f"({two / one:.2f}x)[/bold], median of {ROUNDS} rounds, totals checked"
    )
    return {
        "events": EVENTS,
        "one_shard_events_per_s": round(one),
        "two_shards_events_per_s": round(two),
        "speedup_two_shards": round(two / one, 2),
    }
