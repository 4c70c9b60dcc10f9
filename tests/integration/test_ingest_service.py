"""The ingest service, as a real process, between a real broker and a real database."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from deploy.stack.local import Endpoints
from schemas import TypedEvent
from services.emitter import Emitter
from tests.support.events import module_execution, random_credits, with_other_credits
from tests.support.ingest_process import IngestProcess


@pytest.fixture
def ingest(
    servers: Endpoints, database_url: str, new_topic: str, tmp_path: Path
) -> Iterator[IngestProcess]:
    process = IngestProcess(
        database_url=database_url,
        kafka_bootstrap=servers.kafka_bootstrap,
        topic=new_topic,
        dlq_topic=f"{new_topic}.dlq",
        group_id=f"ingest-{uuid.uuid4().hex[:8]}",
        log_dir=tmp_path,
    )
    yield process
    process.stop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def eventually(check: Callable[[], object], timeout_s: float = 60) -> None:
    """Poll an async or sync check until it returns true."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s")
        await asyncio.sleep(0.2)


async def count(db: asyncpg.Connection, table: str) -> int:
    value = await db.fetchval(f"SELECT count(*) FROM {table}")
    return int(value)


async def read_topic(bootstrap: str, topic: str, expected: int) -> list[object]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[object] = []
    try:
        deadline = time.monotonic() + 30
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
    finally:
        await consumer.stop()
    return records


async def test_ten_thousand_events_with_duplicates_and_conflicts_store_each_once(
    servers: Endpoints, new_topic: str, ingest: IngestProcess, db: asyncpg.Connection
) -> None:
    rng = random.Random(7)
    unique = [module_execution(f"org-{i % 25}", i, random_credits(rng)) for i in range(10_000)]
    duplicates = rng.sample(unique, 1_000)
    conflicts = [with_other_credits(e) for e in rng.sample(unique, 100)]
    ingest.start()

    async with Emitter(servers.kafka_bootstrap, new_topic, "runner-test") as structured:
        await structured.send_many(unique)
    async with Emitter(servers.kafka_bootstrap, new_topic, "runner-test", "binary") as binary:
        await binary.send_many([*duplicates, *conflicts])

    await eventually(
        lambda: (
            ingest.metrics().get(f'ingest_records_received_total{{topic="{new_topic}"}}') == 11_100
        )
    )
    stored = await db.fetch("SELECT id, data->>'credits' AS credits FROM events")
    assert sorted(r["id"] for r in stored) == sorted(e.id for e in unique)
    originals: dict[str, TypedEvent] = {e.id: e for e in unique}
    assert all(r["credits"] == str(originals[r["id"]].data.credits) for r in stored)  # type: ignore[attr-defined]
    rejected = await db.fetch("SELECT id, reason_code FROM rejected_events")
    assert sorted(r["id"] for r in rejected) == sorted(e.id for e in conflicts)
    assert {r["reason_code"] for r in rejected} == {"conflict"}
    metrics = ingest.metrics()
    module_type = 'type="com.metering.module_execution.completed.v2"'
    assert metrics[f"ingest_events_accepted_total{{{module_type}}}"] == 10_000
    assert metrics[f"ingest_events_duplicate_total{{{module_type}}}"] == 1_000
    assert metrics[f"ingest_events_conflicting_total{{{module_type}}}"] == 100
    assert metrics['ingest_records_rejected_total{reason="conflict"}'] == 100
    dead = await read_topic(servers.kafka_bootstrap, f"{new_topic}.dlq", 100)
    assert len(dead) == 100
