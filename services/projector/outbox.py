"""The loop that drains an outbox the projector fills inside its batches.

Decisions (auto-purchases, notifications, webhook deliveries) are written in the
batch's transaction; an `OutboxSender` acts on them after commit, whenever it is
poked or its interval passes, and marks each done only once it is. It survives any
error: a lost server is reconnected, anything else is logged, counted and retried
with backoff; it never stops for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from prometheus_client import Counter

from schemas import TypedEvent
from services.emitter import Emitter
from services.infra import database
from services.infra.topics import ensure_topics
from services.infra.waiting import wait_event

log = logging.getLogger(__name__)


class OutboxSender:
    """Calls `send_pending` until the outbox is drained, then waits for a poke.

    One database connection and, when used, one Kafka producer are kept open
    between drains, and closed after an error.
    """

    what = "the outbox"
    """What it sends, for its log lines."""

    def __init__(
        self, database_url: str, errors: Counter, kafka_bootstrap: str = "", topic: str = ""
    ) -> None:
        self.database_url = database_url
        self.errors = errors
        self.kafka_bootstrap = kafka_bootstrap
        self.topic = topic
        self.source = "metering-projector"
        self.poke = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._emitter: Emitter | None = None

    async def send_pending(self) -> int:
        """Act on what is due; the number done. A full batch is followed by another."""
        raise NotImplementedError

    async def run(
        self, stop: asyncio.Event, interval_s: float = 1.0, max_backoff_s: float = 30
    ) -> None:
        backoff = interval_s
        try:
            while not stop.is_set():
                try:
                    await self.send_pending()
                    backoff = interval_s
                except Exception:  # nothing may stop the sender for good
                    self.errors.inc()
                    log.exception("sending %s failed; retrying in %.0f s", self.what, backoff)
                    await self.close()
                    await wait_event(stop, backoff)
                    backoff = min(backoff * 2, max_backoff_s)
                    continue
                self.poke.clear()
                await wait_event(self.poke, interval_s)
        finally:
            await self.close()

    async def database(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await database.connect(self.database_url)
        return self._connection

    async def producer(self) -> Emitter:
        if self._emitter is None:
            emitter = Emitter(self.kafka_bootstrap, self.topic, self.source)
            await emitter.__aenter__()
            self._emitter = emitter
        return self._emitter

    async def close(self) -> None:
        emitter, self._emitter = self._emitter, None
        connection, self._connection = self._connection, None
        if emitter is not None:
            with contextlib.suppress(Exception):
                await emitter.__aexit__(None, None, None)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


class EventOutbox(OutboxSender):
    """An outbox whose rows are events: each becomes a CloudEvent (`event`) sent to the
    topic, and is marked sent (`mark_sent`) once Kafka has it. The rows are held
    (`pending` ends with FOR UPDATE SKIP LOCKED) until marked: senders of several
    projector processes never send one twice. A row that cannot become a valid event is
    logged and counted and left unsent; the others are sent."""

    pending = ""
    """The unsent rows, oldest first, a batch of them, FOR UPDATE SKIP LOCKED."""
    mark_sent = ""
    """Marks the rows whose event_id is in $1 sent (`mark`)."""
    creates_topic = False
    """Create the topic (services/infra/topics.py) before the first send."""
    sent: Counter | None = None
    """Counts the events sent."""

    def event(self, row: asyncpg.Record) -> TypedEvent:
        """The row's event; ValueError (or KeyError) when it breaks the contract."""
        raise NotImplementedError

    async def mark(self, connection: asyncpg.Connection, events: list[TypedEvent]) -> None:
        """Mark the rows of `events` sent (`mark_sent`, with their ids)."""
        await connection.execute(self.mark_sent, [event.id for event in events])

    async def send_pending(self) -> int:
        connection = await self.database()
        async with connection.transaction():
            rows = await connection.fetch(self.pending)
            events = []
            for row in rows:
                try:
                    events.append(self.event(row))
                except (ValueError, KeyError) as error:  # pydantic's ValidationError included
                    self.errors.inc()
                    log.error("%s: %s is not a valid event: %s", self.what, row["event_id"], error)
            if not events:
                return 0
            if self.creates_topic:
                await ensure_topics(self.kafka_bootstrap, [self.topic])
                self.creates_topic = False
            emitter = await self.producer()
            await emitter.send_many(events)
            await self.mark(connection, events)
        if self.sent is not None:
            self.sent.inc(len(events))
        log.info("sent %d %s", len(events), self.what)
        return len(events)
