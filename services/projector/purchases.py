"""Sends the auto-purchases the projector decided, from the outbox to Kafka.

Decisions are made in the batch's transaction; sending happens after commit,
and a purchase is marked sent only once Kafka has it. Sent again after a
crash, it carries the same id and payload, and ingest counts it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal

import asyncpg

from schemas import TypedEvent
from schemas.catalog import EXTRA_CREDITS_PURCHASED
from services.emitter import Emitter, build_event
from services.infra import database
from services.infra.waiting import wait_event
from services.projector import metrics

log = logging.getLogger(__name__)

SOURCE = "metering-projector"
PURCHASED_V1 = EXTRA_CREDITS_PURCHASED + ".v1"

LARGEST = Decimal(1_000_000_000)
"""Credits in an event have at most 9 integer digits (schemas/README.md)."""

PENDING = """
SELECT event_id, organization_id, credits, purchased_at, threshold_credits, remaining_credits
FROM auto_purchase_outbox WHERE sent_at IS NULL ORDER BY purchased_at LIMIT 500
"""

MARK_SENT = "UPDATE auto_purchase_outbox SET sent_at = now() WHERE event_id = ANY($1::text[])"


class PurchaseSender:
    """Drains auto_purchase_outbox to the events topic whenever it is poked.

    It survives any error: a lost server is reconnected, anything else is
    logged, counted (`projector_auto_purchase_send_errors_total`) and retried
    with backoff; it never stops for good. One connection and one producer are
    kept open between drains. An outbox row that cannot become a valid event
    is logged and counted and left unsent; the others are sent.
    """

    def __init__(self, database_url: str, kafka_bootstrap: str, topic: str) -> None:
        self.database_url = database_url
        self.kafka_bootstrap = kafka_bootstrap
        self.topic = topic
        self.poke = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._emitter: Emitter | None = None

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
                    metrics.PURCHASE_SEND_ERRORS.inc()
                    log.exception("sending auto-purchases failed; retrying in %.0f s", backoff)
                    await self._close()
                    await wait_event(stop, backoff)
                    backoff = min(backoff * 2, max_backoff_s)
                    continue
                self.poke.clear()
                await wait_event(self.poke, interval_s)
        finally:
            await self._close()

    async def send_pending(self) -> int:
        connection = await self._database()
        rows = await connection.fetch(PENDING)
        events = []
        for row in rows:
            try:
                events.append(_purchase(row))
            except ValueError as error:  # pydantic's ValidationError included
                metrics.PURCHASE_SEND_ERRORS.inc()
                log.error("auto-purchase %s is not a valid event: %s", row["event_id"], error)
        if not events:
            return 0
        emitter = await self._producer()
        await emitter.send_many(events)
        await connection.execute(MARK_SENT, [event.id for event in events])
        log.info("sent %d auto-purchase(s)", len(events))
        return len(events)

    async def _database(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await database.connect(self.database_url)
        return self._connection

    async def _producer(self) -> Emitter:
        if self._emitter is None:
            emitter = Emitter(self.kafka_bootstrap, self.topic, SOURCE)
            await emitter.__aenter__()
            self._emitter = emitter
        return self._emitter

    async def _close(self) -> None:
        emitter, self._emitter = self._emitter, None
        connection, self._connection = self._connection, None
        if emitter is not None:
            with contextlib.suppress(Exception):
                await emitter.__aexit__(None, None, None)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


def _purchase(row: asyncpg.Record) -> TypedEvent:
    return build_event(
        PURCHASED_V1,
        {
            "organization_id": row["organization_id"],
            "credits": row["credits"],
            "purchase": "automatic",
            "purchased_at": row["purchased_at"],
            **crossing(row),
        },
        source=SOURCE,
        event_id=row["event_id"],
        time=row["purchased_at"],
    )


def crossing(row: asyncpg.Record) -> dict[str, Decimal]:
    """The crossing that decided the purchase; none for a row decided before it was kept,
    or overdrawn past what an event's credits can say (a billion): the purchase goes anyway."""
    if row["threshold_credits"] is None or abs(row["remaining_credits"]) >= LARGEST:
        return {}
    return {
        "threshold_credits": row["threshold_credits"],
        "remaining_credits": row["remaining_credits"],
    }
