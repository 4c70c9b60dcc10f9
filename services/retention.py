"""Retention: what is kept about refusals and repairs for a while, then purged.

The event store is never purged: it is the source of truth. What goes, once
older than its retention (`METERING_RETENTION_*` settings, in days; empty keeps
for ever):

- `rejected_events`: the records ingest refused, whole, with their reason
  (`REJECTED_DAYS`, default 30), by the time they were refused. Purged by the
  ingest service every `INTERVAL_S`.
- `projector_quarantine` rows released by a replay (`REPLAYED_DAYS`, default
  90), by the time of the replay. Purged by the projector. Rows still held are
  never purged (their events wait for an operator), nor dropped ones: a drop
  is a decision that every rebuild honours, and purging it would count the
  event again at the next rebuild.
- Customer notifications (`notification_outbox`), with their webhook deliveries and
  every attempt's log (`NOTIFICATIONS_DAYS`, default 365), by the time they were
  decided, once sent and none of their deliveries is still pending. Purged by the
  projector. What decides the next notification (`notification_state`) stays.
- The dead-letter topic: Kafka deletes its records after `DEAD_LETTER_DAYS`
  (default 30), the topic's `retention.ms`, which ingest sets when it starts.

Each purge deletes `CHUNK` rows per transaction, so it never holds a long
transaction (which would hold back the projector's high-water mark). Several
processes purging at once only share the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.infra import database
from services.infra.database import Connection

log = logging.getLogger(__name__)


class RetentionSettings(BaseSettings):
    """How long refusals and repairs are kept (env prefix `METERING_RETENTION_`)."""

    model_config = SettingsConfigDict(
        env_prefix="METERING_RETENTION_", extra="ignore", env_parse_none_str=""
    )

    rejected_days: int | None = Field(default=30, ge=1)
    """Days a refused record stays in rejected_events (empty: for ever)."""

    replayed_days: int | None = Field(default=90, ge=1)
    """Days a replayed quarantine record stays (empty: for ever); held and dropped stay."""

    notifications_days: int | None = Field(default=365, ge=1)
    """Days a sent notification stays, with its webhook deliveries' log (empty: for ever)."""

    dead_letter_days: int | None = Field(default=30, ge=1)
    """Days Kafka keeps the dead-letter topic's records (empty: the broker's default)."""

    interval_s: float = Field(default=3600.0, gt=0)
    """How often each service purges."""

    chunk: int = Field(default=10_000, ge=1)
    """Rows deleted per transaction."""


PURGES = {
    "rejected_events": """
        DELETE FROM rejected_events WHERE rejection_id IN (
            SELECT rejection_id FROM rejected_events
            WHERE rejected_at < $1 ORDER BY rejected_at LIMIT $2)""",
    "projector_quarantine": """
        DELETE FROM projector_quarantine WHERE position IN (
            SELECT position FROM projector_quarantine
            WHERE released_how = 'replayed' AND released_at < $1
            ORDER BY released_at LIMIT $2)""",
    "notification_outbox": """
        WITH gone AS (
            SELECT event_id FROM notification_outbox n
            WHERE decided_at < $1 AND sent_at IS NOT NULL
              AND NOT EXISTS (SELECT FROM webhook_deliveries d
                              WHERE d.event_id = n.event_id AND d.status = 'pending')
            ORDER BY decided_at LIMIT $2
        ), attempts AS (
            DELETE FROM webhook_attempts WHERE event_id IN (SELECT event_id FROM gone)
        ), deliveries AS (
            DELETE FROM webhook_deliveries WHERE event_id IN (SELECT event_id FROM gone)
        )
        DELETE FROM notification_outbox WHERE event_id IN (SELECT event_id FROM gone)""",
}
"""What each purge deletes, older than $1, at most $2 rows at a time."""


def retention_days(settings: RetentionSettings, table: str) -> int | None:
    """The retention of `table`'s rows, in days (None: kept for ever)."""
    return {
        "rejected_events": settings.rejected_days,
        "projector_quarantine": settings.replayed_days,
        "notification_outbox": settings.notifications_days,
    }[table]


async def purge(connection: Connection, table: str, older_than: datetime, chunk: int) -> int:
    """Delete `table`'s purgeable rows older than `older_than`, `chunk` per transaction;
    how many went."""
    purged = 0
    while True:
        status = await connection.execute(PURGES[table], older_than, chunk)
        deleted = int(status.rsplit(" ", 1)[1])
        purged += deleted
        if deleted < chunk:
            return purged


async def purge_expired(
    connection: Connection, table: str, settings: RetentionSettings, now: datetime | None = None
) -> int:
    """Purge what `table` holds past its retention; how many rows went."""
    days = retention_days(settings, table)
    if days is None:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    return await purge(connection, table, cutoff, settings.chunk)


async def purge_periodically(
    database_url: str,
    table: str,
    settings: RetentionSettings,
    purged: Callable[[int], None],
) -> None:
    """Every `interval_s`, purge `table` on a connection of its own. A failure is logged
    and tried again next time: it never stops the service that runs it."""
    while True:
        try:
            connection = await database.connect(database_url)
            try:
                count = await purge_expired(connection, table, settings)
            finally:
                await connection.close()
            purged(count)
            if count:
                log.info("purged %d rows of %s past their retention", count, table)
        except Exception:
            log.exception("purging %s failed; trying again in %.0f s", table, settings.interval_s)
        await asyncio.sleep(settings.interval_s)
