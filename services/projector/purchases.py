"""Sends the auto-purchases the projector decided, from the outbox to Kafka.

Decisions are made in the batch's transaction; sending happens after commit,
and a purchase is marked sent only once Kafka has it. Sent again after a
crash, it carries the same id and payload, and ingest counts it once.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError

from schemas.catalog import EXTRA_CREDITS_PURCHASED
from services.emitter import Emitter, build_event
from services.infra import database
from services.infra.database import POSTGRES_TRANSIENT
from services.infra.retry import retry_forever
from services.infra.waiting import wait_event

log = logging.getLogger(__name__)

SOURCE = "metering-projector"
PURCHASED_V1 = EXTRA_CREDITS_PURCHASED + ".v1"

PENDING = """
SELECT event_id, organization_id, credits, purchased_at
FROM auto_purchase_outbox WHERE sent_at IS NULL ORDER BY purchased_at LIMIT 500
"""

MARK_SENT = "UPDATE auto_purchase_outbox SET sent_at = now() WHERE event_id = ANY($1::text[])"


class PurchaseSender:
    """Drains auto_purchase_outbox to the events topic whenever it is poked."""

    def __init__(self, database_url: str, kafka_bootstrap: str, topic: str) -> None:
        self.database_url = database_url
        self.kafka_bootstrap = kafka_bootstrap
        self.topic = topic
        self.poke = asyncio.Event()

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        while not stop.is_set():
            await retry_forever(
                self.send_pending,
                transient=(*POSTGRES_TRANSIENT, KafkaError),
                what="sending auto-purchases",
            )
            self.poke.clear()
            await wait_event(self.poke, interval_s)

    async def send_pending(self) -> int:
        connection = await database.connect(self.database_url)
        try:
            rows = await connection.fetch(PENDING)
            if not rows:
                return 0
            events = [
                build_event(
                    PURCHASED_V1,
                    {
                        "organization_id": row["organization_id"],
                        "credits": row["credits"],
                        "purchase": "automatic",
                        "purchased_at": row["purchased_at"],
                    },
                    source=SOURCE,
                    event_id=row["event_id"],
                    time=row["purchased_at"],
                )
                for row in rows
            ]
            async with Emitter(self.kafka_bootstrap, self.topic, SOURCE) as emitter:
                await emitter.send_many(events)
            await connection.execute(MARK_SENT, [row["event_id"] for row in rows])
            log.info("sent %d auto-purchase(s)", len(rows))
            return len(rows)
        finally:
            await connection.close()
