"""Sends the notifications the projector decided, from the outbox to Kafka.

`sql/notifications.sql` decides them in the batch's transaction (a threshold
crossed while armed); this sends each to the notifications topic after commit,
keyed by organization, and marks it sent only once Kafka has it. Sent again after
a crash, it carries the same id and the same data.
"""

from __future__ import annotations

import json

import asyncpg

from schemas import TypedEvent
from schemas.notifications import notification_event
from services.projector import metrics
from services.projector.outbox import EventOutbox

SOURCE = "metering-projector"

PENDING = """
SELECT event_id, organization_id, type, data, decided_at
FROM notification_outbox WHERE sent_at IS NULL ORDER BY decided_at LIMIT 500
FOR UPDATE SKIP LOCKED
"""

# The data is kept as sent (its contract's form: `2026-12-01T00:00:00Z`, not the
# decision's `...00.000000Z`), so what the API lists is what the topic got.
MARK_SENT = """
UPDATE notification_outbox n SET sent_at = now(), data = s.data
FROM unnest($1::text[], $2::jsonb[]) AS s (event_id, data)
WHERE n.event_id = s.event_id
"""


def notification(row: asyncpg.Record) -> TypedEvent:
    """The CloudEvent of an outbox row (with its type, data and decided_at); ValueError
    if the row breaks the contract, KeyError if its type is not a notification's."""
    return notification_event(
        row["type"],
        json.loads(row["data"]),
        event_id=row["event_id"],
        source=SOURCE,
        time=row["decided_at"],
    )


class NotificationSender(EventOutbox):
    """Drains notification_outbox to the notifications topic (services/projector/outbox.py);
    invalid rows are counted in `projector_notification_send_errors_total`."""

    what = "notifications"
    pending = PENDING
    mark_sent = MARK_SENT
    sent = metrics.NOTIFICATIONS_SENT

    def __init__(self, database_url: str, kafka_bootstrap: str, topic: str) -> None:
        super().__init__(database_url, metrics.NOTIFICATION_SEND_ERRORS, kafka_bootstrap, topic)
        self.source = SOURCE
        self.creates_topic = True

    def event(self, row: asyncpg.Record) -> TypedEvent:
        return notification(row)

    async def mark(self, connection: asyncpg.Connection, events: list[TypedEvent]) -> None:
        sent = [e.data.model_dump_json(exclude_none=True) for e in events]
        await connection.execute(self.mark_sent, [e.id for e in events], sent)
