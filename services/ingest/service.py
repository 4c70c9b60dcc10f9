"""The ingest service: a pipelined Kafka consumer in a consumer group, and the DLQ producer.

Offsets are committed by hand, batch by batch, only once a batch is durable
(`pipeline.py`), so they never run ahead of PostgreSQL. A batch that was not
committed when the process stopped or died is read again; the event store's
unique key makes the replay change nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from prometheus_client import start_http_server

from services.infra.database import create_pool
from services.infra.settings import ConnectionSettings
from services.infra.topics import ensure_topics
from services.ingest import metrics
from services.ingest.dead_letters import KafkaDeadLetters
from services.ingest.decoding import Limits
from services.ingest.ingestor import Ingestor
from services.ingest.pipeline import IngestPipeline
from services.ingest.recorder import prepare_connection
from services.ingest.settings import IngestSettings
from services.partitions import keep_partitions_ahead
from services.retention import RetentionSettings, purge_periodically

log = logging.getLogger(__name__)


class IngestService:
    """The consumer, the pipeline that writes its batches, and the DLQ broker, started together."""

    def __init__(
        self,
        connection: ConnectionSettings,
        settings: IngestSettings,
        retention: RetentionSettings | None = None,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.retention = retention or RetentionSettings()
        self.broker = KafkaBroker(
            connection.kafka_bootstrap, graceful_timeout=settings.graceful_timeout_s, logger=log
        )
        self.consumer: AIOKafkaConsumer | None = None
        self.pool: asyncpg.Pool | None = None
        self._pipeline: IngestPipeline | None = None
        self._running: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._purge_task: asyncio.Task[None] | None = None
        self._partitions_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        topics = [self.connection.events_topic, self.connection.dlq_topic]
        kept = self.retention.dead_letter_days
        retention = {self.connection.dlq_topic: kept} if kept is not None else {}
        await ensure_topics(self.connection.kafka_bootstrap, topics, retention_days=retention)
        self.pool = await create_pool(self.connection.database_url, init=prepare_connection)
        self._purge_task = asyncio.create_task(
            purge_periodically(
                self.connection.database_url, "rejected_events", self.retention, metrics.PURGED.inc
            )
        )
        self._partitions_task = asyncio.create_task(
            keep_partitions_ahead(self.connection.database_url)
        )
        ingestor = Ingestor(
            self.pool,
            KafkaDeadLetters(
                self.broker, self.connection.dlq_topic, self.settings.max_record_bytes
            ),
            Limits(self.settings.max_record_bytes, self.settings.max_future_s),
            retry_max_s=self.settings.retry_max_s,
        )
        if self.settings.metrics_port:
            start_http_server(self.settings.metrics_port)
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.connection.kafka_bootstrap,
            group_id=settings.group_id,
            group_instance_id=settings.instance_id,
            session_timeout_ms=settings.session_timeout_ms,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Bounds what the consumer prefetches while a batch is being written.
            fetch_max_bytes=settings.fetch_max_bytes,
            max_partition_fetch_bytes=min(settings.fetch_max_bytes, 1024 * 1024),
        )
        self._pipeline = IngestPipeline(
            self.consumer,
            ingestor,
            settings.max_batch,
            settings.batch_timeout_ms,
            pause_after_failure_s=settings.retry_max_s,
        )
        self.consumer.subscribe([self.connection.events_topic], listener=self._pipeline)
        await self.consumer.start()
        self._running = asyncio.create_task(self._pipeline.run())
        self._lag_task = asyncio.create_task(self._watch_lag())

    async def stop_consuming(self) -> None:
        """The write in flight finishes and is committed (for `graceful_timeout_s` at most)."""
        if self._pipeline is not None and self._running is not None:
            self._pipeline.stop()
            done, _ = await asyncio.wait({self._running}, timeout=self.settings.graceful_timeout_s)
            if not done:
                log.warning("the batch in flight did not finish in time; it will be read again")
                self._pipeline.abort()
                await asyncio.wait({self._running}, timeout=5)
        if self.consumer is not None:
            await self.consumer.stop()

    async def stop(self) -> None:
        for task in (self._lag_task, self._purge_task, self._partitions_task):
            if task is not None:
                task.cancel()
        if self.pool is not None:
            await self.pool.close()

    async def _watch_lag(self) -> None:
        while True:
            if self.consumer is not None:
                for tp in self.consumer.assignment():
                    await _observe_lag(self.consumer, tp)
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
