"""The ingest service: a FastStream batch subscriber in a consumer group.

With `AckPolicy.NACK_ON_ERROR`, FastStream commits the consumer's position once
the handler returns, and the handler returns only when the batch is durable, so
offsets never run ahead of PostgreSQL. If the handler fails or is interrupted
(shutdown while a server is away), the batch is not committed but rewound and
redelivered; the event store's unique key makes the replay change nothing.
(`AckPolicy.ACK` would commit even after an exception: a lost batch.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from prometheus_client import start_http_server

from services.infra.database import create_pool
from services.infra.settings import ConnectionSettings
from services.infra.topics import ensure_topics
from services.ingest import metrics
from services.ingest.dead_letters import KafkaDeadLetters
from services.ingest.decoding import Limits
from services.ingest.ingestor import Ingestor
from services.ingest.recorder import prepare_connection
from services.ingest.records import RawRecord, RecordOrigin
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


def to_raw(record: Any) -> RawRecord:
    """An aiokafka ConsumerRecord as ingest's own, library-free record."""
    return RawRecord(
        origin=RecordOrigin(record.topic, record.partition, record.offset),
        key=record.key,
        value=record.value,
        headers=tuple(record.headers or ()),
    )


async def _tolerant_parse(
    records: tuple[Any, ...], original: Callable[[tuple[Any, ...]], Awaitable[Any]]
) -> Any:
    """FastStream's batch parser decodes every header as UTF-8 and fails the whole
    batch on one that is not, for ever (REVIEW A2). Such a batch is parsed from
    copies whose header values are made UTF-8; the records themselves, bytes
    intact, stay the raw message that ingest reads. Other batches are not copied."""
    try:
        return await original(records)
    except UnicodeDecodeError:
        readable = tuple(
            dataclasses.replace(
                r, headers=[(k, v.decode("utf-8", "replace").encode()) for k, v in r.headers or ()]
            )
            for r in records
        )
        message = await original(readable)
        message.raw_message = records
        return message


async def _raw_body(message: object) -> object:
    """No decoding by FastStream: ingest decodes (and rejects) records itself."""
    return None


class IngestService:
    """The broker, its batch subscriber and what the handler needs, started together."""

    def __init__(self, connection: ConnectionSettings, settings: IngestSettings) -> None:
        self.connection = connection
        self.settings = settings
        self.broker = KafkaBroker(
            connection.kafka_bootstrap, graceful_timeout=settings.graceful_timeout_s, logger=log
        )
        self.subscriber = self.broker.subscriber(
            connection.events_topic,
            group_id=settings.group_id,
            group_instance_id=settings.instance_id,
            session_timeout_ms=settings.session_timeout_ms,
            batch=True,
            max_records=settings.max_batch,
            batch_timeout_ms=settings.batch_timeout_ms,
            auto_offset_reset="earliest",
            # Bounds what the consumer prefetches while a batch is being written.
            fetch_max_bytes=settings.fetch_max_bytes,
            max_partition_fetch_bytes=min(settings.fetch_max_bytes, 1024 * 1024),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_body,
            parser=_tolerant_parse,
        )
        self.subscriber(self.on_batch)
        self.ingestor: Ingestor | None = None
        self.pool: asyncpg.Pool | None = None
        self._lag_task: asyncio.Task[None] | None = None

    async def on_batch(self, message: KafkaMessage) -> None:
        assert self.ingestor is not None, "the service has not started"
        try:
            await self.ingestor.ingest([to_raw(r) for r in message.raw_message])
        except Exception:
            # Not a server going away (those are retried inside): a bug or a record the
            # store refuses. The batch is rewound, not lost; pause so it does not spin.
            log.exception("a batch failed; it will be redelivered")
            await asyncio.sleep(self.settings.retry_max_s)
            raise

    async def start(self) -> None:
        topics = [self.connection.events_topic, self.connection.dlq_topic]
        await ensure_topics(self.connection.kafka_bootstrap, topics)
        self.pool = await create_pool(self.connection.database_url, init=prepare_connection)
        self.ingestor = Ingestor(
            self.pool,
            KafkaDeadLetters(
                self.broker, self.connection.dlq_topic, self.settings.max_record_bytes
            ),
            Limits(self.settings.max_record_bytes, self.settings.max_future_s),
            retry_max_s=self.settings.retry_max_s,
        )
        if self.settings.metrics_port:
            start_http_server(self.settings.metrics_port)
        self._lag_task = asyncio.create_task(self._watch_lag())

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
        if self.pool is not None:
            await self.pool.close()

    async def _watch_lag(self) -> None:
        while True:
            consumer = getattr(self.subscriber, "consumer", None)
            if consumer is not None:
                for tp in consumer.assignment():
                    await _observe_lag(consumer, tp)
            await asyncio.sleep(5)


async def _observe_lag(consumer: Any, tp: TopicPartition) -> None:
    try:
        end = consumer.highwater(tp)
        position = await consumer.position(tp)
    except (KafkaError, AssertionError, ValueError):
        return
    metrics.CONSUMER_OFFSET.labels(tp.topic, str(tp.partition)).set(position)
    if end is not None:
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(end - position, 0))
