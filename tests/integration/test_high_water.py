"""The projector's high-water mark: held by this database's running transactions only.

Transaction ids are cluster-wide, so the snapshot's xmin stops at a long
transaction in any database of the cluster. The mark skips those it can place
in another database, and still waits for this database's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.event_store import HIGH_WATER

INSERT_EVENT = """
INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256)
VALUES ('test', $1, 'com.metering.credits.adjusted.v1', 'org-1', now(), '{}', '\\x00')
"""

BELOW_MARK = f"SELECT count(*) FROM events WHERE transaction_id < {HIGH_WATER}"
BELOW_SNAPSHOT_XMIN = (
    "SELECT count(*) FROM events WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
)


@pytest.fixture
async def other_database_transaction(database_url: str) -> AsyncIterator[int]:
    """A transaction with an id, left open in another database of the same cluster."""
    other = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
    transaction = other.transaction()
    await transaction.start()
    xid = int(await other.fetchval("SELECT pg_current_xact_id()::text::bigint"))
    yield xid
    await transaction.rollback()
    await other.close()


async def test_a_long_transaction_in_another_database_does_not_hold_the_mark(
    other_database_transaction: int, db: asyncpg.Connection
) -> None:
    await db.execute(INSERT_EVENT, "after-the-other-began")

    assert await db.fetchval(BELOW_SNAPSHOT_XMIN) == 0, "the snapshot's xmin was not held back"
    assert await db.fetchval(BELOW_MARK) == 1


async def test_a_running_transaction_in_this_database_still_holds_the_mark(
    other_database_transaction: int, db: asyncpg.Connection, database_url: str
) -> None:
    writer = await asyncpg.connect(database_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute(INSERT_EVENT, "written-first-committed-last")
        await db.execute(INSERT_EVENT, "written-second-committed-first")

        assert await db.fetchval(BELOW_MARK) == 0

        await transaction.commit()
        assert await db.fetchval(BELOW_MARK) == 2
    finally:
        await writer.close()
