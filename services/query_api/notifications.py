"""Customer notifications as the API shows them: those decided for an organization
(services/projector/sql/notifications.sql), its webhooks, and the log of every
delivery attempt to them (services/projector/webhooks.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import Field

from services.query_api.models import Answer, Model
from services.query_api.queries import Queryable

NOTIFICATIONS = """
SELECT event_id, type, data, decided_at, sent_at FROM notification_outbox
WHERE organization_id = $1
  AND ($2::timestamptz IS NULL OR (decided_at, event_id) < ($2, $3))
ORDER BY decided_at DESC, event_id DESC LIMIT $4
"""

WEBHOOKS = """
SELECT endpoint_id, url, created_at FROM webhook_endpoints
WHERE organization_id = $1 AND removed_at IS NULL ORDER BY created_at, endpoint_id
"""

DELIVERIES = """
SELECT d.event_id, n.type, d.endpoint_id, e.url, d.status, d.attempts, d.created_at,
       d.next_attempt_at, d.delivered_at,
       coalesce((SELECT json_agg(json_build_object(
                            'attempt', a.attempt, 'attempted_at', a.attempted_at,
                            'duration_ms', a.duration_ms, 'status_code', a.status_code,
                            'error', a.error) ORDER BY a.attempt)
                 FROM webhook_attempts a
                 WHERE a.event_id = d.event_id AND a.endpoint_id = d.endpoint_id),
                '[]'::json) AS log
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id
JOIN notification_outbox n ON n.event_id = d.event_id
WHERE d.organization_id = $1 AND ($2::text IS NULL OR d.status = $2)
  AND ($3::timestamptz IS NULL OR (d.created_at, d.event_id, d.endpoint_id) < ($3, $4, $5))
ORDER BY d.created_at DESC, d.event_id DESC, d.endpoint_id DESC LIMIT $6
"""


async def notifications(
    db: Queryable, organization: str, before: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first, before the (decided_at, id) `before`."""
    at, event_id = before or (None, "")
    return await db.fetch(NOTIFICATIONS, organization, at, event_id, limit)


async def webhooks(db: Queryable, organization: str) -> list[asyncpg.Record]:
    return await db.fetch(WEBHOOKS, organization)


async def deliveries(
    db: Queryable,
    organization: str,
    status: str | None,
    before: tuple[datetime, str, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first, before the (created_at, event id, endpoint id) `before`."""
    at, event_id, endpoint_id = before or (None, "", "")
    return await db.fetch(DELIVERIES, organization, status, at, event_id, endpoint_id, limit)


class Notification(Model):
    id: str = Field(description="The CloudEvent's id: what crossed, in which period, which time.")
    type: Literal[
        "com.metering.credits.threshold_crossed.v1",
        "com.metering.credits.auto_purchase_cap_reached.v1",
    ]
    decided_at: datetime = Field(description="When the projector decided it (the event's time).")
    sent_at: datetime | None = Field(
        description="When the notifications topic took it; null: on its way."
    )
    data: dict[str, Any] = Field(
        description="The event's data, as its JSON Schema (schemas/jsonschema/<type>.json)"
        " says: as sent (timestamps without a zero fraction) once `sent_at` is set."
    )


class NotificationList(Answer):
    organization_id: str
    notifications: list[Notification] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for older ones; null at the end."
    )


class Webhook(Model):
    endpoint_id: str
    url: str
    created_at: datetime


class WebhookList(Model):
    organization_id: str
    webhooks: list[Webhook] = Field(description="Registered with `metering webhooks add`.")


class Attempt(Model):
    attempt: int = Field(description="1 for the first.")
    attempted_at: datetime
    duration_ms: int
    status_code: int | None = Field(description="The endpoint's HTTP status; null: no answer.")
    error: str | None = Field(description="Why there was no answer (or why none was tried).")


class Delivery(Model):
    event_id: str = Field(description="The notification's id, also the `webhook-id` header.")
    type: str
    endpoint_id: str
    url: str
    status: Literal["pending", "delivered", "failed"] = Field(
        description="failed: no 2xx answer within 24 h of retries, or the webhook was removed."
    )
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    log: list[Attempt] = Field(description="Every attempt, first first.")


class DeliveryList(Model):
    organization_id: str
    deliveries: list[Delivery] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for older ones; null at the end."
    )
