"""The pipelined ingest loop, in-process, between a real broker and a real database.

A write that fails (a bug, not a server going away) must not let the batch
decoded behind it commit offsets past it: both are read again, nothing is lost,
nothing is stored twice, and the committed offsets end at the end of the topic.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer

from deploy.stack.local import Endpoints
from schemas import TypedEvent
from services.emitter import Emitter
from services.infra.database import create_pool
from services.ingest.decoding import Limits
from services.ingest.ingestor import BatchReport, DecodedBatch, Ingestor
from services.ingest.pipeline import IngestPipeline
from services.ingest.recorder import prepare_connection
from services.ingest.records import Rejection
from tests.support.events import module_execution, random_credits
from tests.support.waiting import eventually


class NoDeadLetters:
    transient: tuple[type[BaseException], ...] = (OSError,)

    async def send(self, rejections: Sequence[Rejection]) -> None:
        raise AssertionError(f"nothing here is refused: {rejections[:1]}")


class FailingOnce(Ingestor):
    """The real ingestor, whose `fail_at`-th write raises once, as a bug would."""

    def __init__(self, pool: asyncpg.Pool, fail_at: int) -> None:
        super().__init__(pool, NoDeadLetters(), Limits())
        self.writes = 0
        self.fail_at = fail_at
        self.failed_batch: DecodedBatch | None = None

    async def store(self, batch: DecodedBatch) -> BatchReport:
        self.writes += 1
        if self.writes == self.fail_at:
            self.failed_batch = batch
            raise RuntimeError("a bug in the write path")
        return await super().store(batch)


@dataclass
class Member:
    """One pipeline of a consumer group, running."""

    consumer: AIOKafkaConsumer
    pipeline: IngestPipeline
    running: asyncio.Task[None]

    async def stop(self) -> None:
        self.pipeline.stop()
        await self.running
        await self.consumer.stop()


async def start_member(
    bootstrap: str, topic: str, group: str, ingestor: Ingestor, fetch_bytes: int = 1024 * 1024
) -> Member:
    """A pipeline on its own consumer; small `fetch_bytes` make small batches."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=fetch_bytes,
    )
    pipeline = IngestPipeline(consumer, ingestor, 300, 100, pause_after_failure_s=0.2)
    consumer.subscribe([topic], listener=pipeline)
    await consumer.start()
    return Member(consumer, pipeline, asyncio.create_task(pipeline.run()))


async def send(bootstrap: str, topic: str, events: list[TypedEvent]) -> None:
    async with Emitter(bootstrap, topic, "runner-test") as emitter:
        await emitter.send_many(events)


async def test_a_failed_write_is_read_again_and_nothing_commits_past_it(
    servers: Endpoints, database_url: str, new_topic: str, db: asyncpg.Connection
) -> None:
    rng = random.Random(5)
    events = [module_execution(f"org-{i % 7}", i, random_credits(rng)) for i in range(6_000)]
    await send(servers.kafka_bootstrap, new_topic, events)
    pool = await create_pool(database_url, init=prepare_connection)
    ingestor = FailingOnce(pool, fail_at=3)
    group = f"pipeline-{uuid.uuid4().hex[:8]}"
    # Small batches: many writes, one fails.
    member = await start_member(servers.kafka_bootstrap, new_topic, group, ingestor, 64 * 1024)
    consumer = member.consumer
    try:

        async def all_stored() -> bool:
            return int(await db.fetchval("SELECT count(*) FROM events")) == len(events)

        await eventually(all_stored, timeout_s=120)
        partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))

        async def committed_at_the_end() -> bool:
            return all([await consumer.committed(tp) == ends[tp] for tp in partitions])

        await eventually(committed_at_the_end, timeout_s=30)
    finally:
        await member.stop()
        await pool.close()

    assert ingestor.failed_batch is not None, "no write failed: nothing was tested"
    failed = {(r.origin.partition, r.origin.offset) for r in ingestor.failed_batch.records}
    assert failed, "the failed batch was empty"
    rows = await db.fetch("SELECT kafka_partition, kafka_offset FROM events")
    stored = {(r["kafka_partition"], r["kafka_offset"]) for r in rows}
    assert failed <= stored, "the failed batch was not read again"
    assert len(rows) == len(stored) == len(events)
    assert await db.fetchval("SELECT count(*) FROM rejected_events") == 0


class NeverDurable(Ingestor):
    """A write that never returns, as one retrying while PostgreSQL is away."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, NoDeadLetters(), Limits())
        self.writing = asyncio.Event()

    async def store(self, batch: DecodedBatch) -> BatchReport:
        self.writing.set()
        await asyncio.Event().wait()
        raise AssertionError("never reached")


async def test_a_stop_waits_for_the_write_and_an_abort_leaves_it_uncommitted(
    servers: Endpoints, database_url: str, new_topic: str
) -> None:
    events = [module_execution("org-1", i, random_credits(random.Random(i))) for i in range(50)]
    await send(servers.kafka_bootstrap, new_topic, events)
    pool = await create_pool(database_url, init=prepare_connection)
    ingestor = NeverDurable(pool)
    group = f"pipeline-{uuid.uuid4().hex[:8]}"
    member = await start_member(servers.kafka_bootstrap, new_topic, group, ingestor)
    pipeline, running, consumer = member.pipeline, member.running, member.consumer
    try:
        await asyncio.wait_for(ingestor.writing.wait(), 60)
        pipeline.stop()
        done, _ = await asyncio.wait({running}, timeout=1)
        assert not done, "stop returned while the write was in flight"

        pipeline.abort()
        done, _ = await asyncio.wait({running}, timeout=5)

        assert done, "abort did not end the loop"
        committed = [await consumer.committed(tp) for tp in consumer.assignment()]
        assert committed
        assert all(offset is None for offset in committed)
    finally:
        await consumer.stop()
        await pool.close()


async def test_a_second_pipeline_joining_mid_stream_loses_and_doubles_nothing(
    servers: Endpoints, database_url: str, new_topic: str, db: asyncpg.Connection
) -> None:
    rng = random.Random(8)
    events = [module_execution(f"org-{i % 11}", i, random_credits(rng)) for i in range(8_000)]
    await send(servers.kafka_bootstrap, new_topic, events)
    group = f"pipeline-{uuid.uuid4().hex[:8]}"
    pool = await create_pool(database_url, init=prepare_connection)
    members: list[Member] = []

    async def join() -> None:
        ingestor = Ingestor(pool, NoDeadLetters(), Limits())
        # Small batches: the second member joins mid-stream.
        members.append(
            await start_member(servers.kafka_bootstrap, new_topic, group, ingestor, 32 * 1024)
        )

    async def stored() -> int:
        return int(await db.fetchval("SELECT count(*) FROM events"))

    try:
        await join()
        await eventually(lambda: _at_least(stored, 500), timeout_s=60)
        await join()
        await eventually(lambda: _at_least(stored, len(events)), timeout_s=120)
        first = members[0].consumer
        partitions = {tp for m in members for tp in m.consumer.assignment()}
        ends = await first.end_offsets(list(partitions))

        async def committed_at_the_end() -> bool:
            return all([await first.committed(tp) == ends[tp] for tp in partitions])

        await eventually(committed_at_the_end, timeout_s=30)
        assert members[1].consumer.assignment(), "the second member never got a partition"
    finally:
        for member in members:
            member.pipeline.stop()
        for member in members:
            await member.stop()
        await pool.close()

    assert await stored() == len(events)
    assert await db.fetchval("SELECT count(DISTINCT (source, id)) FROM events") == len(events)
    assert await db.fetchval("SELECT count(*) FROM rejected_events") == 0


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n
