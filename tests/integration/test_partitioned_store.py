"""The event store partitioned by month: one id is stored once whatever months it spans."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from services import partitions
from services.ingest.recorder import append, prepare_connection
from services.partitions import Month
from tests.integration.test_event_store_append import event


async def partition_of(db: asyncpg.Connection, event_id: str) -> str:
    return str(
        await db.fetchval("SELECT tableoid::regclass::text FROM events WHERE id = $1", event_id)
    )


async def stored_in(db: asyncpg.Connection, event_id: str, recorded_at: datetime) -> None:
    """Move a stored event to the month of `recorded_at`, as if it had been stored then."""
    await db.execute("UPDATE events SET recorded_at = $2 WHERE id = $1", event_id, recorded_at)
    await partitions.ensure_partitions(db)


async def test_a_copy_stored_months_later_is_a_duplicate_and_another_payload_a_conflict(
    db: asyncpg.Connection,
) -> None:
    await append(db, [event("a", 0), event("b", 1)], [])
    await stored_in(db, "a", datetime(2026, 1, 15, tzinfo=UTC))
    assert await partition_of(db, "a") == "events_2026_01"
    assert await partition_of(db, "b") != "events_2026_01"

    result = await append(
        db, [event("a", 0), event("a", 7), event("a", 8, '{"credits": "9"}'), event("c", 9)], []
    )

    assert [e.id for e in result.accepted] == ["c"]
    assert [e.record.origin.offset for e in result.redelivered] == [0]
    assert [e.record.origin.offset for e in result.duplicates] == [7]
    assert [c.record.origin.offset for c in result.conflicts] == [8]
    assert await db.fetchval("SELECT count(*) FROM events WHERE id = 'a'") == 1
    reasons = await db.fetch("SELECT reason_code, kafka_offset FROM rejected_events")
    assert [(r["reason_code"], r["kafka_offset"]) for r in reasons] == [("conflict", 8)]


async def test_a_second_copy_written_around_the_recorder_is_refused(
    db: asyncpg.Connection,
) -> None:
    await append(db, [event("a", 0)], [])
    await stored_in(db, "a", datetime(2026, 1, 15, tzinfo=UTC))

    try:
        await db.execute(
            "INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256)"
            " VALUES ('runner', 'a', 't', 'org-1', now(), '{}', '\\x00')"
        )
    except asyncpg.UniqueViolationError:
        pass
    else:
        raise AssertionError("a second (runner, a) was stored in another month")
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_a_month_without_its_partition_waits_in_the_default_then_moves_to_it(
    db: asyncpg.Connection,
) -> None:
    await append(db, [event("a", 0)], [])
    await db.execute("UPDATE events SET recorded_at = '2031-05-02T10:00:00Z' WHERE id = 'a'")
    assert await partition_of(db, "a") == "events_default"

    made = await partitions.ensure_partitions(db)

    assert made == 1
    assert await partition_of(db, "a") == "events_2031_05"
    assert Month(2031, 5) in await partitions.months(db)
    assert await db.fetchval("SELECT count(*) FROM events_default") == 0
    assert await db.fetchval("SELECT position FROM event_keys WHERE id = 'a'") == await db.fetchval(
        "SELECT position FROM events WHERE id = 'a'"
    )
    assert (await append(db, [event("a", 1)], [])).duplicates != []


async def test_the_months_ahead_exist_and_making_them_again_changes_nothing(
    db: asyncpg.Connection,
) -> None:
    now = Month.of(datetime.now(UTC))
    ahead = [now, Month.of(now.end), Month.of(Month.of(now.end).end)]

    assert await partitions.ensure_partitions(db) == 0
    assert set(ahead) <= set(await partitions.months(db))


async def test_two_writers_storing_one_new_id_at_once_store_it_once(
    db: asyncpg.Connection, database_url: str
) -> None:
    other = await asyncpg.connect(database_url)
    try:
        await prepare_connection(other)
        outer = db.transaction()
        await outer.start()
        first = await append(db, [event("x", 0)], [])  # claimed, not yet committed
        racing = asyncio.create_task(append(other, [event("x", 5), event("y", 6)], []))
        await asyncio.sleep(0.5)
        assert not racing.done(), "the second writer should wait on the first one's claim"
        await outer.commit()
        second = await racing
    finally:
        await other.close()

    assert [e.id for e in first.accepted] == ["x"]
    assert [e.id for e in second.accepted] == ["y"]
    assert [e.id for e in second.duplicates] == ["x"]
    assert await db.fetchval("SELECT count(*) FROM events WHERE id = 'x'") == 1
