"""Sends the notifications the projector decided, from the outbox to Kafka.

`sql/notifications.sql` decides them in the batch's transaction (a threshold
crossed while armed); this sends each to the notifications topic after commit,
keyed by organization, and marks it sent only once Kafka has it. Sent again after
a crash, it carries the same id and the same data.
"""

from __future__ import annotations

import json
import logging

import asyncpg

from schemas import TypedEvent
from schemas.notifications import notification_event
from services.infra.topics import ensure_topics
from services.projector import metrics
from services.projector.outbox import OutboxSender

log = logging.getLogger(__name__)

SOURCE = "metering-projector"

PENDING = """
SELECT event_id, organization_id, type, data, decided_at
FROM notification_outbox WHERE sent_at IS NULL ORDER BY decided_at LIMIT 500
FOR UPDATE SKIP LOCKED
"""

MARK_SENT = "UPDATE notification_outbox SET sent_at = now() WHERE event_id = ANY($1::text[])"


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


class NotificationSender(OutboxSender):
    """Drains notification_outbox to the notifications topic (services/projector/outbox.py).

    A row that cannot become a valid event is logged and counted
    (`projector_notification_send_errors_total`) and left unsent; the others are sent.
    """

    what = "notifications"

    def __init__(self, database_url: str, kafka_bootstrap: str, topic: str) -> None:
        super().__init__(database_url, metrics.NOTIFICATION_SEND_ERRORS, kafka_bootstrap, topic)
        self.source = SOURCE
        self._topic_ready = False

    async def send_pending(self) -> int:
        """Send what is unsent, holding the rows (FOR UPDATE SKIP LOCKED) until they are
        marked: senders of several projector processes never send one twice."""
        connection = await self.database()
        async with connection.transaction():
            rows = await connection.fetch(PENDING)
            events = []
            for row in rows:
                try:
                    events.append(notification(row))
                except (ValueError, KeyError) as error:  # pydantic's ValidationError included
                    metrics.NOTIFICATION_SEND_ERRORS.inc()
                    log.error("notification %s is not a valid event: %s", row["event_id"], error)
            if not events:
                return 0
            if not self._topic_ready:
                await ensure_topics(self.kafka_bootstrap, [self.topic])
                self._topic_ready = True
            emitter = await self.producer()
            await emitter.send_many(events)
            await connection.execute(MARK_SENT, [event.id for event in events])
        metrics.NOTIFICATIONS_SENT.inc(len(events))
        log.info("sent %d notification(s)", len(events))
        return len(events)
