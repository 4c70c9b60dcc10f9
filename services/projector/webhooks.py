"""Delivers notifications to the webhooks operators register per organization.

Each notification gets one delivery per endpoint the organization had when it was
decided (`sql/notifications.sql`). A delivery is an HTTP POST of the notification's
CloudEvent, signed as the Standard Webhooks specification says (`webhook-id`, the
notification's id on every attempt, so a receiver drops repeats; `webhook-timestamp`;
`webhook-signature`, HMAC-SHA256 with the endpoint's `whsec_` secret). A 2xx answer
delivers it; anything else is retried with backoff until the retry window (24 h)
has passed, then it is failed. Every attempt is logged (webhook_attempts) and the
API lists the log. Deliverers may run side by side: each claims due deliveries
with a lease (next_attempt_at), so one attempt runs at a time.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook

from schemas.fields import IDENTIFIER_PATTERN
from services.emitter.client import encode
from services.infra.database import Connection
from services.projector import metrics
from services.projector.notifications import notification
from services.projector.outbox import OutboxSender
from services.projector.settings import ProjectorSettings

log = logging.getLogger(__name__)

CLAIM = """
UPDATE webhook_deliveries d
SET next_attempt_at = now() + make_interval(secs => $2), attempts = d.attempts + 1
FROM (SELECT event_id, endpoint_id FROM webhook_deliveries
      WHERE status = 'pending' AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due,
     notification_outbox n, webhook_endpoints e
WHERE d.event_id = due.event_id AND d.endpoint_id = due.endpoint_id
  AND n.event_id = d.event_id AND e.endpoint_id = d.endpoint_id
RETURNING d.event_id, d.endpoint_id, d.attempts, d.created_at, e.url, e.secret,
          e.removed_at, n.type, n.data, n.decided_at
"""

RECORD = """
WITH attempt AS (
    INSERT INTO webhook_attempts (event_id, endpoint_id, attempt, attempted_at, duration_ms,
                                  status_code, error)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
)
UPDATE webhook_deliveries
SET status = $8, next_attempt_at = $9,
    delivered_at = CASE WHEN $8 = 'delivered' THEN $4 + make_interval(secs => $5 / 1000.0) END
WHERE event_id = $1 AND endpoint_id = $2
"""

PARALLEL = 16
"""Deliveries attempted at once by one deliverer."""


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(secret: str, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The headers of one attempt: the id, the time and the signature over both and the body."""
    signature = Webhook(secret).sign(message_id, at.astimezone(UTC), body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


@dataclass(frozen=True)
class Retries:
    """When a failed attempt is tried again: `first_s` after the first, each wait 4 times
    the one before, at most `longest_s`; never once `window_s` has passed since the
    notification was decided."""

    first_s: float = 5.0
    longest_s: float = 3600.0
    window_s: float = 86_400.0

    @classmethod
    def of(cls, settings: ProjectorSettings) -> Retries:
        return cls(
            settings.webhook_retry_s, settings.webhook_max_retry_s, settings.webhook_retry_window_s
        )

    def next_attempt(self, attempts: int, created_at: datetime, now: datetime) -> datetime | None:
        """After `attempts` failed ones; None: the window is over, the delivery fails."""
        wait = min(self.first_s * 4 ** max(attempts - 1, 0), self.longest_s)
        at = now + timedelta(seconds=wait)
        return at if at <= created_at + timedelta(seconds=self.window_s) else None


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    retry: bool = True
    """False: trying again cannot help (the endpoint was removed, the notification is
    not a valid event); the delivery fails now."""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDeliverer(OutboxSender):
    """Attempts the due deliveries, PARALLEL at a time, and logs each attempt."""

    what = "webhook deliveries"

    def __init__(self, database_url: str, settings: ProjectorSettings) -> None:
        super().__init__(database_url, metrics.WEBHOOK_ERRORS)
        self.timeout_s = settings.webhook_timeout_s
        self.retries = Retries.of(settings)
        self._client: httpx.AsyncClient | None = None

    async def send_pending(self) -> int:
        connection = await self.database()
        lease_s = self.timeout_s + 30
        done = 0
        while rows := await connection.fetch(CLAIM, PARALLEL, lease_s):
            outcomes = await asyncio.gather(*(self._attempt(row) for row in rows))
            await connection.executemany(
                RECORD,
                [
                    self._record(row, at, outcome)
                    for row, (at, outcome) in zip(rows, outcomes, strict=True)
                ],
            )
            done += len(rows)
        return done

    async def _attempt(self, row: asyncpg.Record) -> tuple[datetime, Outcome]:
        at = datetime.now(UTC)
        if row["removed_at"] is not None:
            return at, Outcome(None, "endpoint removed", 0, retry=False)
        try:
            value, _ = encode(notification(row), "structured")
        except (ValueError, KeyError) as error:  # not a valid notification: never will be
            return at, Outcome(None, f"not a valid notification: {error}"[:500], 0, retry=False)
        started = time.perf_counter()
        try:
            response = await self._http().post(
                row["url"],
                content=value,
                headers=signed_headers(row["secret"], row["event_id"], value, at),
            )
            outcome = Outcome(response.status_code, None, _ms(started))
        except Exception as error:  # no answer, whatever the reason: logged, retried
            outcome = Outcome(None, f"{type(error).__name__}: {error}"[:500], _ms(started))
        return at, outcome

    def _record(self, row: asyncpg.Record, at: datetime, outcome: Outcome) -> tuple[object, ...]:
        if outcome.delivered:
            status, next_at = "delivered", None
        else:
            next_at = None
            if outcome.retry:
                next_at = self.retries.next_attempt(row["attempts"], row["created_at"], at)
            status = "pending" if next_at is not None else "failed"
        metrics.WEBHOOK_ATTEMPTS.labels("retry" if status == "pending" else status).inc()
        if status == "failed":
            log.warning("webhook delivery %s to %s failed for good", row["event_id"], row["url"])
        return (
            row["event_id"],
            row["endpoint_id"],
            row["attempts"],
            at,
            outcome.duration_ms,
            outcome.status_code,
            outcome.error,
            status,
            next_at,
        )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        await super().close()


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    organization_id: str
    url: str
    created_at: datetime


class BadEndpoint(ValueError):
    """A URL that cannot be a webhook, or an endpoint that does not exist."""


async def add_endpoint(connection: Connection, organization_id: str, url: str) -> tuple[str, str]:
    """Register `url` for the organization's notifications; its id and its signing secret.
    BadEndpoint if the URL is not http(s) or is registered already."""
    if re.fullmatch(IDENTIFIER_PATTERN, organization_id) is None:
        raise BadEndpoint(f"{organization_id!r} is not an organization id ({IDENTIFIER_PATTERN})")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = httpx.URL()
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadEndpoint(f"{url!r} is not an http:// or https:// URL")
    endpoint_id, secret = "ep_" + secrets.token_hex(8), new_secret()
    try:
        await connection.execute(
            "INSERT INTO webhook_endpoints (endpoint_id, organization_id, url, secret)"
            " VALUES ($1, $2, $3, $4)",
            endpoint_id,
            organization_id,
            url,
            secret,
        )
    except asyncpg.UniqueViolationError:
        raise BadEndpoint(f"{url} is registered for {organization_id} already") from None
    return endpoint_id, secret


async def endpoints(connection: Connection, organization_id: str | None) -> list[Endpoint]:
    """The endpoints registered (and not removed), of one organization or all."""
    rows = await connection.fetch(
        "SELECT endpoint_id, organization_id, url, created_at FROM webhook_endpoints"
        " WHERE removed_at IS NULL AND ($1::text IS NULL OR organization_id = $1)"
        " ORDER BY organization_id, created_at",
        organization_id,
    )
    return [Endpoint(**dict(row)) for row in rows]


async def remove_endpoint(connection: Connection, endpoint_id: str) -> None:
    """No more deliveries to it; those pending fail at their next attempt. The log stays."""
    status = await connection.execute(
        "UPDATE webhook_endpoints SET removed_at = now()"
        " WHERE endpoint_id = $1 AND removed_at IS NULL",
        endpoint_id,
    )
    if status == "UPDATE 0":
        raise BadEndpoint(f"no endpoint {endpoint_id} (see `metering webhooks list`)")
