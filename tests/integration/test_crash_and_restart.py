"""Kill -9 ingest and the projector under load, restart PostgreSQL and Kafka: every total exact.

A 200,000-event load (a generated history of periods, runs, corrections and
purchases, and bulk module executions) is sent in chunks while the test kills
ingest and the projector with SIGKILL at random moments, at least twenty times
each, and restarts the PostgreSQL server and the Kafka broker once each
(servers of the test's own: tests/support/servers.py). A chunk the producer
could not hand over while the broker was away is sent again, so some events
arrive twice. At the end every event is stored once, nothing is rejected or
quarantined, the projector's checkpoint is at the store's end, and every read
model says what the oracle computes from the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from deploy.stack.postgres import PostgresServer
from deploy.stack.services import ServiceProcess
from schemas import TypedEvent
from tests.support.events import bulk_executions
from tests.support.fuzz import Record, good
from tests.support.generated_history import build_history, expected, read_models, stored
from tests.support.processes import IngestProcess, ProjectorProcess
from tests.support.servers import OwnKafka, own_kafka, own_postgres
from tests.support.topics import create_topic

EVENTS = int(os.environ.get("METERING_CRASH_EVENTS", "200000"))
KILLS = int(os.environ.get("METERING_CRASH_KILLS", "20"))
"""SIGKILLs of each service."""
CHUNK = 5_000
SEND_PAUSE_S = 1.0


@pytest.fixture
def postgres() -> Iterator[tuple[PostgresServer, int]]:
    with own_postgres() as server:
        yield server


@pytest.fixture
def kafka() -> Iterator[OwnKafka]:
    with own_kafka() as broker:
        yield broker


@pytest.fixture
def stopped_at_the_end() -> Iterator[list[ServiceProcess]]:
    """The test's service processes, stopped when it ends, passed or failed (none left over)."""
    processes: list[ServiceProcess] = []
    yield processes
    for process in processes:
        process.stop()


def load(rng: random.Random) -> list[TypedEvent]:
    """A generated history without conflicting copies, then bulk executions, shuffled."""
    history = build_history(rng, lambda low, high: high)
    events = [e for i, e in enumerate(history.events) if i not in history.conflicts]
    events += bulk_executions(rng, EVENTS - len(events), "crash-bulk")
    rng.shuffle(events)
    return events


class Sender:
    """Sends chunks in order; a chunk the broker did not acknowledge is sent again."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.chunks_sent = 0
        self.resent = 0

    async def send_all(self, records: list[Record]) -> None:
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            while not await self._send(chunk):
                self.resent += 1
                await asyncio.sleep(1)
            self.chunks_sent += 1
            await asyncio.sleep(SEND_PAUSE_S)

    async def _send(self, chunk: list[Record]) -> bool:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, request_timeout_ms=5000
        )
        futures: list[asyncio.Future[object]] = []
        try:
            await asyncio.wait_for(producer.start(), 10)
            for r in chunk:
                futures.append(
                    await producer.send(self.topic, r.value, key=r.key, headers=r.headers)
                )
            await asyncio.wait_for(asyncio.gather(*futures), 30)
            return True
        except (KafkaError, TimeoutError, OSError):
            # The whole chunk is sent again; what the broker did take is a duplicate.
            for future in futures:
                future.cancel()
            await asyncio.gather(*futures, return_exceptions=True)
            return False
        finally:
            with contextlib.suppress(KafkaError, TimeoutError, OSError):
                await asyncio.wait_for(producer.stop(), 10)


async def store_state(url: str) -> tuple[int, int] | None:
    """(events stored, projector checkpoint), or None while the server is away."""
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM events) AS n,"
            " (SELECT coalesce(min(position), 0) FROM projection_checkpoints) AS checkpoint"
        )
        assert row is not None
        return int(row["n"]), int(row["checkpoint"])
    finally:
        await conn.close()


def note(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


@pytest.mark.timeout(900)
async def test_kill_minus_nine_and_server_restarts_under_load_leave_every_total_exact(
    postgres: tuple[PostgresServer, int],
    kafka: OwnKafka,
    tmp_path: Path,
    stopped_at_the_end: list[ServiceProcess],
) -> None:
    server, port = postgres
    url = server.url(port)
    rng = random.Random(12)
    events = load(rng)
    records = [good(e, rng) for e in events]
    unique = stored(events)
    topic = f"crash.{uuid.uuid4().hex[:8]}"
    await create_topic(kafka.bootstrap, topic)
    ingest = IngestProcess(
        url,
        kafka.bootstrap,
        topic,
        f"{topic}.dlq",
        "ingest-crash",
        tmp_path,
        max_batch=1000,
        instance_id=os.environ.get("METERING_CRASH_INSTANCE_ID", "ingest-0"),
    )
    projector = ProjectorProcess(url, tmp_path, batch_size=2000)
    services = {"ingest": ingest, "projector": projector}
    stopped_at_the_end += services.values()
    ingest.start()
    projector.start()
    sender = Sender(kafka.bootstrap, topic)
    sending = asyncio.create_task(sender.send_all(records))

    actions = ["ingest"] * KILLS + ["projector"] * KILLS
    rng.shuffle(actions)
    actions.insert(8, "postgres")  # both while chunks are still being sent
    actions.insert(16, "kafka")
    kills: Counter[str] = Counter()
    survived: dict[str, bool] = {}
    started = time.monotonic()
    try:
        for action in actions:
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            note(f"{action}; sent {sender.chunks_sent} chunks; store {await store_state(url)}")
            if action in services:
                service = services[action]
                assert service.alive(), f"{action} exited by itself: {service.log()[-3000:]}"
                service.kill()
                kills[action] += 1
                await asyncio.to_thread(service.start)
                continue
            if action == "postgres":
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(3)
                await asyncio.to_thread(server.start, port)
            else:
                await asyncio.to_thread(kafka.stop)
                await asyncio.sleep(3)
                await asyncio.to_thread(kafka.start)
            await asyncio.sleep(2)
            for name, service in services.items():
                survived[f"{name} through a {action} restart"] = service.alive()
                if not service.alive():
                    await asyncio.to_thread(service.start)
        await asyncio.wait_for(sending, 600)
    finally:
        if not sending.done():
            sending.cancel()
    chaos_s = time.monotonic() - started

    deadline = time.monotonic() + 300
    while True:
        for name, service in services.items():
            assert service.alive(), f"{name} exited: {service.log()[-3000:]}"
        state = await store_state(url)
        if state is not None and state[0] == len(unique):
            db = await asyncpg.connect(url)
            try:
                end = int(await db.fetchval("SELECT coalesce(max(position), 0) FROM events"))
            finally:
                await db.close()
            if state[1] >= end:
                break
        assert time.monotonic() < deadline, f"not done after five minutes: {state}"
        note(f"settling: store {state}, expected {len(unique)}")
        await asyncio.sleep(0.5)
    settled_s = time.monotonic() - started - chaos_s

    db = await asyncpg.connect(url)
    try:
        ids = await db.fetch("SELECT source, id, count(*) AS n FROM events GROUP BY source, id")
        assert {(r["source"], r["id"]) for r in ids} == {(e.source, e.id) for e in unique}
        assert all(r["n"] == 1 for r in ids), "an event stored twice"
        rejected = await db.fetch("SELECT reason_code, reason FROM rejected_events LIMIT 5")
        assert not rejected, f"rejected: {[dict(r) for r in rejected]}"
        assert await db.fetchval("SELECT count(*) FROM projector_quarantine") == 0
        assert await read_models(db) == expected(events)
    finally:
        await db.close()
    assert kills == {"ingest": KILLS, "projector": KILLS}
    assert all(survived.values()), f"a service did not survive a server restart: {survived}"
    print(
        f"\n{len(events)} events ({len(unique)} unique), kills {dict(kills)}, "
        f"chunks re-sent {sender.resent}, chaos {chaos_s:.1f} s, settled {settled_s:.1f} s "
        f"after it; {survived}"
    )
