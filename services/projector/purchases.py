"""Sends the auto-purchases the projector decided, from the outbox to Kafka.

Decisions are made in the batch's transaction; sending happens after commit,
and a purchase is marked sent only once Kafka has it. Sent again after a
crash, it carries the same id and payload, and ingest counts it once.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from schemas import TypedEvent
from schemas.catalog import EXTRA_CREDITS_PURCHASED
from services.emitter import build_event
from services.projector import metrics
from services.projector.outbox import EventOutbox

SOURCE = "metering-projector"
PURCHASED_V1 = EXTRA_CREDITS_PURCHASED + ".v1"

LARGEST = Decimal(1_000_000_000)
"""Credits in an event have at most 9 integer digits (schemas/README.md)."""

PENDING = """
SELECT event_id, organization_id, credits, purchased_at, threshold_credits, remaining_credits
FROM auto_purchase_outbox WHERE sent_at IS NULL ORDER BY purchased_at LIMIT 500
FOR UPDATE SKIP LOCKED
"""

MARK_SENT = "UPDATE auto_purchase_outbox SET sent_at = now() WHERE event_id = ANY($1::text[])"


class PurchaseSender(EventOutbox):
    """Drains auto_purchase_outbox to the events topic (services/projector/outbox.py);
    errors and invalid rows are counted in `projector_auto_purchase_send_errors_total`."""

    what = "auto-purchases"
    pending = PENDING
    mark_sent = MARK_SENT

    def __init__(self, database_url: str, kafka_bootstrap: str, topic: str) -> None:
        super().__init__(database_url, metrics.PURCHASE_SEND_ERRORS, kafka_bootstrap, topic)
        self.source = SOURCE

    def event(self, row: asyncpg.Record) -> TypedEvent:
        return _purchase(row)


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
