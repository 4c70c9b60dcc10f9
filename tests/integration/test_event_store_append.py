"""Appending batches to the event store: set-based, deduplicating, conflict-aware."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from services.ingest.recorder import append, ranges_of
from services.ingest.records import NewEvent, RawRecord, ReasonCode, RecordOrigin, Rejection


def event(event_id: str, offset: int, payload: str = '{"credits": "1.5"}') -> NewEvent:
    record = RawRecord(RecordOrigin("events", 0, offset), b"org-1", payload.encode(), ())
    return NewEvent(
        source="runner",
        id=event_id,
        type="com.example.test.v1",
        organization_id="org-1",
        time=datetime(2026, 11, 1, tzinfo=UTC),
        data_json=payload,
        payload_sha256=hashlib.sha256(payload.encode()).digest(),
        record=record,
    )


async def stored_ids(conn: asyncpg.Connection) -> list[str]:
    return [row["id"] for row in await conn.fetch("SELECT id FROM events ORDER BY position")]


async def test_a_batch_is_stored_in_order(db: asyncpg.Connection) -> None:
    result = await append(db, [event("a", 0), event("b", 1), event("c", 2)], [])

    assert [e.id for e in result.accepted] == ["a", "b", "c"]
    assert await stored_ids(db) == ["a", "b", "c"]


async def test_a_duplicate_sent_again_counts_once(db: asyncpg.Connection) -> None:
    await append(db, [event("a", 0)], [])

    result = await append(db, [event("a", 7), event("a", 8), event("b", 9)], [])

    assert [e.id for e in result.accepted] == ["b"]
    assert len(result.duplicates) == 2
    assert result.conflicts == []
    assert await stored_ids(db) == ["a", "b"]


async def test_a_redelivered_record_is_neither_new_nor_a_duplicate(
    db: asyncpg.Connection,
) -> None:
    await append(db, [event("a", 0), event("b", 1)], [])

    result = await append(db, [event("a", 0), event("b", 1)], [])

    assert result.accepted == []
    assert result.duplicates == []
    assert [e.id for e in result.redelivered] == ["a", "b"]
    assert await stored_ids(db) == ["a", "b"]


async def test_same_id_with_another_payload_keeps_the_first_and_records_the_second(
    db: asyncpg.Connection,
) -> None:
    await append(db, [event("a", 0)], [])

    result = await append(
        db,
        [event("a", 5, '{"credits": "2"}'), event("b", 6, '{"x": 1}'), event("b", 7, '{"x": 2}')],
        [],
    )

    assert [e.id for e in result.accepted] == ["b"]
    assert sorted((c.id, c.record.origin.offset) for c in result.conflicts) == [("a", 5), ("b", 7)]
    stored = await db.fetch("SELECT id, data::text AS data FROM events ORDER BY id")
    assert [(r["id"], r["data"]) for r in stored] == [
        ("a", '{"credits": "1.5"}'),
        ("b", '{"x": 1}'),
    ]
    rejected = await db.fetch(
        "SELECT id, reason_code, kafka_offset, raw FROM rejected_events ORDER BY kafka_offset"
    )
    assert [(r["id"], r["reason_code"], r["kafka_offset"]) for r in rejected] == [
        ("a", "conflict", 5),
        ("b", "conflict", 7),
    ]
    assert rejected[0]["raw"] == b'{"credits": "2"}'


async def test_rejections_are_recorded_once_even_when_redelivered(
    db: asyncpg.Connection,
) -> None:
    bad = RawRecord(RecordOrigin("events", 1, 42), None, b"not json", (("x-trace", b"t1"),))
    rejection = Rejection(ReasonCode.NOT_JSON, "not JSON: Expecting value", bad)

    await append(db, [], [rejection])
    await append(db, [], [rejection])

    rows = await db.fetch("SELECT reason_code, raw, kafka_headers FROM rejected_events")
    assert len(rows) == 1
    assert rows[0]["reason_code"] == "not_json"
    assert rows[0]["raw"] == b"not json"
    assert rows[0]["kafka_headers"] == '{"x-trace": "t1"}'


async def test_an_exact_copy_after_a_conflicting_one_is_a_duplicate_not_a_conflict(
    db: asyncpg.Connection,
) -> None:
    # Issue 10, point 8: every copy is judged against the stored event, never another copy.
    await append(db, [event("a", 0)], [])

    later = await append(db, [event("a", 1, '{"credits": "9"}'), event("a", 2)], [])

    assert [c.record.origin.offset for c in later.conflicts] == [1]
    assert [d.record.origin.offset for d in later.duplicates] == [2]
    assert later.accepted == []


async def test_copies_of_a_new_id_in_one_batch_are_judged_against_the_first(
    db: asyncpg.Connection,
) -> None:
    result = await append(db, [event("a", 0), event("a", 1, '{"credits": "9"}'), event("a", 2)], [])

    assert [e.record.origin.offset for e in result.accepted] == [0]
    assert [c.record.origin.offset for c in result.conflicts] == [1]
    assert [d.record.origin.offset for d in result.duplicates] == [2]
    assert await stored_ids(db) == ["a"]


async def test_a_refused_record_with_nul_bytes_is_stored_whole(db: asyncpg.Connection) -> None:
    # REVIEW A2: NUL in a header or in the envelope's id failed the insert into
    # rejected_events, and the partition retried the batch for ever.
    headers = (("x-trace", b"t\x001"), ("x-bytes", b"\xff\xfe"), ("x-ok", b"fine"))
    bad = RawRecord(RecordOrigin("events", 1, 43), b"k\x00", b"{\x00}", headers)
    rejection = Rejection(
        ReasonCode.INVALID_ENVELOPE, "id 'evt\x001' is invalid", bad, source="s\x00", id="evt\x001"
    )

    await append(db, [], [rejection])

    row = await db.fetchrow(
        "SELECT reason, source, id, raw, kafka_key, kafka_headers FROM rejected_events"
    )
    assert row is not None
    assert (row["raw"], row["kafka_key"]) == (b"{\x00}", b"k\x00")
    assert (row["source"], row["id"]) == ("s\\u0000", "evt\\u00001")
    assert json.loads(row["kafka_headers"]) == {
        "x-trace": {"base64": base64.b64encode(b"t\x001").decode()},
        "x-bytes": {"base64": base64.b64encode(b"\xff\xfe").decode()},
        "x-ok": "fine",
    }


class _DeadLetters:
    transient: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.sent: list[Rejection] = []

    async def send(self, rejections: Sequence[Rejection]) -> None:
        self.sent += rejections


async def test_an_error_no_record_can_cause_redelivers_the_batch_and_sets_nothing_aside(
    db: asyncpg.Connection, database_url: str
) -> None:
    # A bug of ours (class 42) or a full disk must not dead-letter good events one by one.
    from services.emitter.client import encode
    from services.infra.database import create_pool
    from services.ingest.decoding import Limits
    from services.ingest.ingestor import Ingestor
    from services.ingest.recorder import prepare_connection
    from tests.support.events import module_execution

    await db.execute("ALTER TABLE events RENAME COLUMN data TO data_renamed")
    pool = await create_pool(database_url, init=prepare_connection)
    dead = _DeadLetters()
    try:
        records = []
        for n in range(4):
            value, headers = encode(module_execution("org-1", n, Decimal(1)), "structured")
            records.append(RawRecord(RecordOrigin("events", 0, n), b"org-1", value, tuple(headers)))
        with pytest.raises(asyncpg.UndefinedColumnError):
            await Ingestor(pool, dead, Limits(max_future_s=10**9)).ingest(records)
    finally:
        await pool.close()
    assert dead.sent == []
    assert await db.fetchval("SELECT count(*) FROM rejected_events") == 0


def test_the_offsets_received_are_runs_of_consecutive_offsets_per_partition() -> None:
    origins = [RecordOrigin("t", 0, o) for o in (6, 0, 2, 1, 5, 2)] + [
        RecordOrigin("t", 1, 3),
        RecordOrigin("u", 0, 4),
    ]

    assert ranges_of(origins) == [("t", 0, 0, 2), ("t", 0, 5, 6), ("t", 1, 3, 3), ("u", 0, 4, 4)]


async def test_the_offsets_received_and_the_exact_copies_are_recorded_with_the_batch(
    db: asyncpg.Connection,
) -> None:
    first = [event("a", 0), event("b", 1)]
    await append(db, first, [], ranges_of(e.record.origin for e in first))
    again = [event("a", 0), event("b", 1), event("a", 2)]  # redelivered, and an exact copy

    await append(db, again, [], ranges_of(e.record.origin for e in again))
    await append(db, again, [], ranges_of(e.record.origin for e in again))  # and once more

    ranges = await db.fetch(
        "SELECT kafka_topic, kafka_partition, first_offset, last_offset FROM ingest_ranges"
        " ORDER BY first_offset, last_offset"
    )
    assert [tuple(r) for r in ranges] == [("events", 0, 0, 1), ("events", 0, 0, 2)]
    copies = await db.fetch(
        "SELECT kafka_topic, kafka_partition, kafka_offset, source, id FROM ingest_duplicates"
    )
    assert [tuple(r) for r in copies] == [("events", 0, 2, "runner", "a")]


async def test_a_failed_append_records_no_offsets_received(db: asyncpg.Connection) -> None:
    broken = event("a", 0, payload="not json")

    with pytest.raises(asyncpg.PostgresError):
        await append(db, [broken], [], ranges_of([broken.record.origin]))

    assert await db.fetchval("SELECT count(*) FROM ingest_ranges") == 0
