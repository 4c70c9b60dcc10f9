"""One batch through ingest: decode, append durably, dead-letter what was refused.

The caller commits the batch's Kafka offsets only after `ingest` returns, so a
batch is either wholly durable (events, conflicts and rejections in one
PostgreSQL transaction, rejections on the dead-letter topic) or redelivered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from services.infra.database import POSTGRES_TRANSIENT, caused_by_data
from services.infra.retry import retry_forever
from services.ingest import metrics
from services.ingest.decoding import Limits, decode
from services.ingest.recorder import AppendResult, Range, append, ranges_of
from services.ingest.records import NewEvent, RawRecord, ReasonCode, Rejection


class DeadLetters(Protocol):
    """Where refused records go, besides rejected_events."""

    async def send(self, rejections: Sequence[Rejection]) -> None: ...

    transient: tuple[type[BaseException], ...]


@dataclass(frozen=True)
class DecodedBatch:
    """A batch decoded, not yet stored."""

    records: Sequence[RawRecord]
    events: list[NewEvent]
    rejections: list[Rejection]

    @classmethod
    def joined(cls, parts: Sequence[DecodedBatch]) -> DecodedBatch:
        """One batch of several decoded one after another, in their order."""
        return cls(
            [record for part in parts for record in part.records],
            [event for part in parts for event in part.events],
            [rejection for part in parts for rejection in part.rejections],
        )


@dataclass(frozen=True)
class BatchReport:
    received: int
    result: AppendResult
    rejected: list[Rejection]


class Ingestor:
    """Turns batches of Kafka records into durable events."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dead_letters: DeadLetters,
        limits: Limits,
        retry_max_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._dead_letters = dead_letters
        self._limits = limits
        self._retry_max_s = retry_max_s
        self._clock = clock

    async def ingest(self, records: Sequence[RawRecord]) -> BatchReport:
        """Make the batch durable; returns only when it is, retrying while servers are away."""
        return await self.store(self.decode_batch(records))

    def decode_batch(self, records: Sequence[RawRecord]) -> DecodedBatch:
        """The CPU half of a batch, done while the previous batch is being written."""
        now = self._clock()
        events: list[NewEvent] = []
        rejections: list[Rejection] = []
        for record in records:
            outcome = decode(record, now, self._limits)
            if isinstance(outcome, NewEvent):
                events.append(outcome)
            else:
                rejections.append(outcome)
        return DecodedBatch(records, events, rejections)

    async def store(self, batch: DecodedBatch) -> BatchReport:
        """The I/O half: events, conflicts and rejections durable, refusals dead-lettered."""
        records, events, rejections = batch.records, batch.events, list(batch.rejections)
        started = time.perf_counter()
        received = ranges_of(record.origin for record in records)
        try:
            result = await self._append(events, rejections, received)
        except asyncpg.PostgresError as error:
            if not caused_by_data(error):
                raise  # not a record's doing: the batch is redelivered, nothing set aside
            metrics.FAILED_BATCHES.inc()
            result = await self._isolate(events, rejections, error)
            await self._append([], [], received)  # after every outcome of the batch
        metrics.WRITE_LATENCY.observe(time.perf_counter() - started)
        rejections += result.unstorable
        refused = [*rejections, *result.conflicts]
        if refused:

            async def send() -> None:
                await self._dead_letters.send(refused)

            await retry_forever(
                send,
                transient=self._dead_letters.transient,
                what="sending to the dead-letter topic",
                max_delay_s=self._retry_max_s,
                on_retry=lambda _: metrics.RETRIES.labels("kafka").inc(),
            )
        self._count(records, result, rejections)
        return BatchReport(len(records), result, rejections)

    async def _append(
        self,
        events: list[NewEvent],
        rejections: list[Rejection],
        received: Sequence[Range] = (),
    ) -> AppendResult:
        """One transaction; retried while PostgreSQL is away, any other error raised."""

        async def write() -> AppendResult:
            async with self._pool.acquire() as connection:
                return await append(connection, events, rejections, received)

        return await retry_forever(
            write,
            transient=POSTGRES_TRANSIENT,
            what="appending a batch to PostgreSQL",
            max_delay_s=self._retry_max_s,
            on_retry=lambda _: metrics.RETRIES.labels("postgres").inc(),
        )

    async def _isolate(
        self, events: list[NewEvent], rejections: list[Rejection], error: asyncpg.PostgresError
    ) -> AppendResult:
        """Append a batch the store refused (`error`) in halves until each refused record is alone.

        Only for errors a record's content can cause (SQLSTATE classes 22, 23).
        A refused event becomes an `unstorable` rejection with the store's
        error; a refused rejection goes to the dead-letter topic only. The rest
        of the batch lands, so one record never blocks its partition.
        """
        items: list[NewEvent | Rejection] = [*events, *rejections]
        if len(items) == 1:
            return await self._unstorable(items[0], error)
        half = len(items) // 2
        result = AppendResult()
        for part in (items[:half], items[half:]):
            part_events = [i for i in part if isinstance(i, NewEvent)]
            part_rejections = [i for i in part if isinstance(i, Rejection)]
            try:
                done = await self._append(part_events, part_rejections)
            except asyncpg.PostgresError as refused:
                if not caused_by_data(refused):
                    raise
                done = await self._isolate(part_events, part_rejections, refused)
            result.merge(done)
        return result

    async def _unstorable(
        self, item: NewEvent | Rejection, error: asyncpg.PostgresError
    ) -> AppendResult:
        if isinstance(item, Rejection):
            return AppendResult()  # on the dead-letter topic with its own reason, not in the table
        rejection = Rejection(
            ReasonCode.UNSTORABLE,
            f"the event store refused it ({error.sqlstate}): {error}",
            item.record,
            source=item.source,
            id=item.id,
            type=item.type,
            organization_id=item.organization_id,
        )
        try:
            result = await self._append([], [rejection])
        except asyncpg.PostgresError:
            result = AppendResult()
        result.unstorable.append(rejection)
        return result

    @staticmethod
    def _count(
        records: Sequence[RawRecord], result: AppendResult, rejected: list[Rejection]
    ) -> None:
        # Counted per label once per batch: the hot path stays free of per-event metric calls.
        metrics.BATCH_SIZE.observe(len(records))
        for topic, n in Counter(r.origin.topic for r in records).items():
            metrics.RECEIVED.labels(topic).inc(n)
        for type_name, n in Counter(e.type for e in result.accepted).items():
            metrics.ACCEPTED.labels(type_name).inc(n)
        for type_name, n in Counter(e.type for e in result.duplicates).items():
            metrics.DUPLICATES.labels(type_name).inc(n)
        metrics.REDELIVERED.inc(len(result.redelivered))
        for type_name, n in Counter(c.type or "" for c in result.conflicts).items():
            metrics.CONFLICTS.labels(type_name).inc(n)
        for code, n in Counter(r.reason_code.value for r in [*rejected, *result.conflicts]).items():
            metrics.REJECTED.labels(code).inc(n)
