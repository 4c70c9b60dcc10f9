"""Days and periods do not depend on the PostgreSQL server's own time zone (REVIEW B4, B7)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import urlsplit

import asyncpg

from schemas.timezones import IANA_TIME_ZONES
from services.infra import database
from services.ingest.recorder import prepare_connection as prepare_recorder
from services.projector.projection import prepare_connection
from services.query_api.queries import Reader
from tests.support.events import module_execution
from tests.support.projecting import project_everything
from tests.support.store import store


async def test_postgresql_and_python_know_every_time_zone_the_contract_accepts(
    db: asyncpg.Connection,
) -> None:
    unknown_to_postgres = await db.fetch(
        "SELECT z FROM unnest($1::text[]) z WHERE z NOT IN (SELECT name FROM pg_timezone_names)",
        sorted(IANA_TIME_ZONES),
    )

    assert len(IANA_TIME_ZONES) > 500
    assert unknown_to_postgres == []
    assert all(zoneinfo.ZoneInfo(name) for name in IANA_TIME_ZONES)
    assert not {"UTC+5", "localtime", "Factory"} & IANA_TIME_ZONES


async def test_a_server_whose_zone_is_prague_files_usage_as_a_utc_server_does(
    database_url: str,
) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'Europe/Prague'")
    assert await admin.fetchval("SHOW timezone") != "Europe/Prague"  # only new sessions
    await admin.close()
    unpinned = await asyncpg.connect(database_url)
    assert await unpinned.fetchval("SHOW timezone") == "Europe/Prague"
    await unpinned.close()

    db = await database.connect(database_url)
    pool = await database.create_pool(database_url)
    try:
        await prepare_connection(db)
        await prepare_recorder(db)
        # No subscription: calendar months in UTC. In Prague, 00:30Z on Nov 1 is
        # still before 01:00 local midnight's month end if the month is added in
        # the session's zone (REVIEW B4's repro).
        await store(
            db,
            [
                module_execution("org-1", 1, Decimal(1), when=datetime(2026, 10, 15, tzinfo=UTC)),
                module_execution(
                    "org-1", 2, Decimal(2), when=datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
                ),
            ],
        )
        await project_everything(db, 1)

        periods = await db.fetch(
            "SELECT period_start, period_end, credits_used FROM billing_periods"
            " ORDER BY period_start"
        )
        days = await db.fetch("SELECT day, credits_used FROM organization_daily_usage ORDER BY day")
        november = await Reader(pool).period_starting("org-1", date(2026, 11, 1))
    finally:
        await db.close()
        await pool.close()

    assert [tuple(p) for p in periods] == [
        (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), Decimal(1)),
        (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), Decimal(2)),
    ]
    assert [tuple(d) for d in days] == [(date(2026, 10, 15), Decimal(1)), (date(2026, 11, 1), 2)]
    assert november is not None
    assert november["period_start"] == datetime(2026, 11, 1, tzinfo=UTC)
