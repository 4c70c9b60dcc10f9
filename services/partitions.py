"""The event store's monthly partitions: made ahead, listed, and where a month lies.

`events` is partitioned by the UTC month of `recorded_at` (DESIGN: the store is
append-only, so a month that has ended never changes). The partitions are made
by the database function `ensure_event_partitions` (migration 0011), which the
migration runs, and which ingest runs when it starts and every hour after, for
the current month and the next `MONTHS_AHEAD`. Should that ever lag, rows wait
in `events_default` instead of failing, and the next run moves them to their
month. Deduplication does not depend on the partitions: `event_keys` holds every
(source, id) ever stored.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.infra import database
from services.infra.database import Connection

log = logging.getLogger(__name__)

MONTHS_AHEAD = 2
"""Months after the current one that always have their partition."""

UPKEEP_INTERVAL_S = 3600.0

MONTH_NAME = re.compile(r"events_(\d{4})_(\d{2})")

ENSURE = """
SELECT ensure_event_partitions(now() + make_interval(months => $1), coalesce($2, now()))
"""

LIST = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass
ORDER BY c.relname
"""


@dataclass(frozen=True, order=True)
class Month:
    """A UTC month of the store: the partition `events_YYYY_MM`."""

    year: int
    month: int

    @property
    def table(self) -> str:
        return f"events_{self.year:04d}_{self.month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return Month(self.year + self.month // 12, self.month % 12 + 1).start

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @classmethod
    def parse(cls, text: str) -> Month:
        """`2026-01` (as the CLI takes it) or `events_2026_01`."""
        found = re.fullmatch(r"(\d{4})-(\d{2})", text) or MONTH_NAME.fullmatch(text)
        if found is None or not 1 <= int(found[2]) <= 12:
            raise ValueError(f"{text!r} is no month: write it as YYYY-MM")
        return cls(int(found[1]), int(found[2]))

    @classmethod
    def of(cls, moment: datetime) -> Month:
        utc = moment.astimezone(UTC)
        return cls(utc.year, utc.month)


async def ensure_partitions(
    connection: Connection, months_ahead: int = MONTHS_AHEAD, since: datetime | None = None
) -> int:
    """Make the partitions of this month (or from `since`'s) to the next `months_ahead`,
    and of any month whose rows wait in the default partition; how many were made."""
    return int(await connection.fetchval(ENSURE, months_ahead, since))


async def months(connection: Connection | asyncpg.Pool) -> list[Month]:
    """The months that have a partition in the store, oldest first."""
    rows = await connection.fetch(LIST)
    return sorted(
        Month.parse(row["relname"]) for row in rows if MONTH_NAME.fullmatch(row["relname"])
    )


async def keep_partitions_ahead(
    database_url: str, interval_s: float = UPKEEP_INTERVAL_S, months_ahead: int = MONTHS_AHEAD
) -> None:
    """Every `interval_s`, make the partitions ahead on a connection of its own. A failure
    is logged and tried again next time: rows wait in the default partition meanwhile."""
    while True:
        try:
            connection = await database.connect(database_url)
            try:
                made = await ensure_partitions(connection, months_ahead)
            finally:
                await connection.close()
            if made:
                log.info("made %d monthly partitions of the event store", made)
        except Exception:
            log.exception("making the event store's partitions failed; again in %.0f s", interval_s)
        await asyncio.sleep(interval_s)
