"""PostgreSQL goes away mid-stream; ingest waits, recovers by itself, loses and doubles nothing."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from deploy.stack.local import Endpoints
from deploy.stack.postgres import PostgresServer
from deploy.stack.processes import free_port
from services.emitter import Emitter
from services.infra.migrations.runner import migrate
from tests.support.events import module_execution, random_credits
from tests.support.processes import IngestProcess
from tests.support.waiting import eventually


@pytest.fixture
def stoppable_postgres() -> Iterator[tuple[PostgresServer, int]]:
    """A PostgreSQL server of this test's own, so the test may stop it."""
    root = Path(tempfile.mkdtemp(prefix="metering-pg-"))
    os.chmod(root, 0o755)
    server, port = PostgresServer(root), free_port()
    server.start(port)
    migrate(server.url(port))
    yield server, port
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


async def stored(url: str) -> int:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return -1
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def test_ingest_survives_postgres_going_away_for_a_few_seconds(
    servers: Endpoints,
    new_topic: str,
    stoppable_postgres: tuple[PostgresServer, int],
    tmp_path: Path,
) -> None:
    postgres, port = stoppable_postgres
    url = postgres.url(port)
    rng = random.Random(3)
    events = [module_execution(f"org-{i % 20}", i, random_credits(rng)) for i in range(60_000)]
    ingest = IngestProcess(
        url,
        servers.kafka_bootstrap,
        new_topic,
        f"{new_topic}.dlq",
        f"ingest-{uuid.uuid4().hex[:8]}",
        tmp_path,
        max_batch=500,
    )
    async with Emitter(servers.kafka_bootstrap, new_topic, "runner-test") as emitter:
        await emitter.send_many(events[:20_000])
        ingest.start()
        try:
            await eventually(lambda: _stored_at_least(url, 5_000))
            postgres.stop()
            await emitter.send_many(events[20_000:])
            await asyncio.sleep(4)
            assert ingest.alive(), "ingest died while PostgreSQL was away"
            postgres.start(port)

            await eventually(lambda: _stored_at_least(url, 60_000), timeout_s=120)
            await asyncio.sleep(1)
            assert await stored(url) == 60_000
            retries = ingest.metrics().get('ingest_retries_total{server="postgres"}', 0)
            assert retries > 0, "the outage was never seen; nothing was tested"
        finally:
            ingest.stop()
    conn = await asyncpg.connect(url)
    try:
        doubled = await conn.fetch("SELECT id FROM events GROUP BY id HAVING count(*) > 1")
        total = await conn.fetchval("SELECT sum((data->>'credits')::numeric) FROM events")
    finally:
        await conn.close()
    assert doubled == []
    assert total == sum(e.data.credits for e in events)  # type: ignore[attr-defined]


async def _stored_at_least(url: str, expected: int) -> bool:
    return await stored(url) >= expected
