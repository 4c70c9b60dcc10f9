"""Appends a batch to the event store in one transaction, set-based.

A batch is copied (COPY) into a temporary table and inserted with one
statement; an id already in event_keys (every id ever stored, across the
store's monthly partitions and its archived months) is not inserted again. An event whose id is
already stored with a different payload is a conflict: the first one stays,
the second goes to rejected_events. A redelivered Kafka record (same topic,
partition and offset as the stored event) is neither: it is simply already
there, which is what makes a replay after a crash change nothing.

The same transaction records what was received (ingest_ranges: each partition's runs
of consecutive offsets) and the one outcome no other table keeps, an exact copy
(ingest_duplicates): reconciliation (services/query_api/reconciliation.py) checks every offset
received against its outcome.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg

from services import event_store
from services.infra.database import Connection
from services.ingest.records import NewEvent, ReasonCode, RecordOrigin, Rejection

_INCOMING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS incoming_events (
    ord integer, first_copy boolean, source text, id text, type text, organization_id text,
    time timestamptz, data jsonb, payload_sha256 bytea,
    kafka_topic text, kafka_partition integer, kafka_offset bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS incoming_rejections (
    reason_code text, reason text, source text, id text, type text,
    organization_id text, kafka_topic text, kafka_partition integer,
    kafka_offset bigint, kafka_key bytea, kafka_headers jsonb, raw bytea
) ON COMMIT DELETE ROWS;
"""

_INCOMING_COLUMNS = (
    "ord",
    "first_copy",
    "source",
    "id",
    "type",
    "organization_id",
    "time",
    "data",
    "payload_sha256",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)

# The batch's first copy of each id (marked when copied: a filter on an array of ords is a
# linear search per row) not yet stored. The check is a correlated subplan (OFFSET 0 keeps
# it from becoming a join): the statement's plan is cached per connection, and a plan made
# while event_keys was small would hash all of it for every batch once it is large. The
# statement's trigger claims the ids in event_keys: one that a concurrent writer claimed
# after the check fails it with a unique violation, and the batch is appended again.
_INSERT_EVENTS = """
INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256,
                    kafka_topic, kafka_partition, kafka_offset)
SELECT source, id, type, organization_id, time, data, payload_sha256,
       kafka_topic, kafka_partition, kafka_offset
FROM incoming_events i
WHERE i.first_copy
  AND NOT EXISTS (SELECT 1 FROM event_keys k WHERE k.source = i.source AND k.id = i.id
                  OFFSET 0)  -- a probe of event_keys_pkey per row, whatever the statistics
ORDER BY ord
RETURNING source, id
"""

# A separate statement from the insert, so it sees rows that concurrent
# writers committed while the insert waited on them, and the rows the insert
# itself stored: each copy is compared with the stored one (its digest is kept in
# event_keys, so also when its month is archived; then it is never a redelivery).
_CLASSIFY_NOT_INSERTED = """
SELECT i.ord,
       k.payload_sha256 = i.payload_sha256 AS same_payload,
       e.position IS NOT NULL AND (e.kafka_topic, e.kafka_partition, e.kafka_offset)
         IS NOT DISTINCT FROM (i.kafka_topic, i.kafka_partition, i.kafka_offset) AS redelivered
FROM incoming_events i
CROSS JOIN LATERAL (  -- probes, as in _INSERT_EVENTS: a redelivered batch is all copies
    SELECT k.payload_sha256, k.position FROM event_keys k
    WHERE k.source = i.source AND k.id = i.id OFFSET 0) k
LEFT JOIN LATERAL (
    SELECT e.position, e.kafka_topic, e.kafka_partition, e.kafka_offset FROM events e
    WHERE e.position = k.position OFFSET 0) e ON true
WHERE i.ord = ANY($1::integer[])
ORDER BY i.ord
"""

_REJECTION_COLUMNS = (
    "reason_code",
    "reason",
    "source",
    "id",
    "type",
    "organization_id",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_key",
    "kafka_headers",
    "raw",
)

_INSERT_REJECTIONS = """
INSERT INTO rejected_events (reason_code, reason, source, id, type, organization_id,
                             kafka_topic, kafka_partition, kafka_offset, kafka_key,
                             kafka_headers, raw)
SELECT reason_code, reason, source, id, type, organization_id,
       kafka_topic, kafka_partition, kafka_offset, kafka_key, kafka_headers, raw
FROM incoming_rejections
ON CONFLICT ON CONSTRAINT rejected_events_record DO NOTHING
"""


_INSERT_RANGES = """
INSERT INTO ingest_ranges (kafka_topic, kafka_partition, first_offset, last_offset)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[])
ON CONFLICT DO NOTHING
"""

_INSERT_DUPLICATES = """
INSERT INTO ingest_duplicates (kafka_topic, kafka_partition, kafka_offset, source, id)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[], $5::text[])
ON CONFLICT DO NOTHING
"""

Range = tuple[str, int, int, int]
"""Consecutive offsets of one partition received: topic, partition, first, last."""


def ranges_of(origins: Iterable[RecordOrigin]) -> list[Range]:
    """The runs of consecutive offsets among `origins`, per topic partition."""
    ranges: list[Range] = []
    by_partition = sorted({(o.topic, o.partition, o.offset) for o in origins})
    for topic, partition, offset in by_partition:
        if ranges and ranges[-1][:2] == (topic, partition) and ranges[-1][3] == offset - 1:
            ranges[-1] = (topic, partition, ranges[-1][2], offset)
        else:
            ranges.append((topic, partition, offset, offset))
    return ranges


@dataclass
class AppendResult:
    """What one batch did to the store."""

    accepted: list[NewEvent] = field(default_factory=list)
    duplicates: list[NewEvent] = field(default_factory=list)
    redelivered: list[NewEvent] = field(default_factory=list)
    conflicts: list[Rejection] = field(default_factory=list)
    unstorable: list[Rejection] = field(default_factory=list)
    """Events the store refused, isolated from their batch (services/ingest/ingestor.py)."""

    def merge(self, other: AppendResult) -> None:
        """Add what another part of the same batch did."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.redelivered += other.redelivered
        self.conflicts += other.conflicts
        self.unstorable += other.unstorable


async def prepare_connection(connection: Connection) -> None:
    """Pool `init` hook: the per-connection temporary tables a batch is copied into."""
    await connection.execute(_INCOMING_DDL)


def _conflict(event: NewEvent) -> Rejection:
    return Rejection(
        reason_code=ReasonCode.CONFLICT,
        reason=f"event ({event.source}, {event.id}) is already stored with a different payload",
        record=event.record,
        source=event.source,
        id=event.id,
        type=event.type,
        organization_id=event.organization_id,
    )


def storable(text: str | None) -> str | None:
    """`text` as PostgreSQL text and jsonb can hold it: NUL written as the escape `\\u0000`."""
    return None if text is None else text.replace("\x00", "\\u0000")


def headers_json(headers: tuple[tuple[str, bytes], ...]) -> str:
    """Kafka headers as a JSON object: UTF-8 values as strings, any other (bytes that are
    not UTF-8, or hold NUL) as {"base64": ...}, so a refused record's headers are kept whole."""
    kept: dict[str, object] = {}
    for name, value in headers:
        try:
            text: str | None = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text:
            kept[str(storable(name))] = {"base64": base64.b64encode(value).decode()}
        else:
            kept[str(storable(name))] = text
    return json.dumps(kept)


def _rejection_row(rejection: Rejection) -> tuple[object, ...]:
    record = rejection.record
    return (
        rejection.reason_code.value,
        storable(rejection.reason),
        storable(rejection.source),
        storable(rejection.id),
        storable(rejection.type),
        storable(rejection.organization_id),
        record.origin.topic,
        record.origin.partition,
        record.origin.offset,
        record.key,
        headers_json(record.headers),
        record.value,
    )


CLAIM_ATTEMPTS = 3
"""Times a batch is appended when a concurrent writer stores one of its ids first."""


async def append(
    connection: Connection,
    events: list[NewEvent],
    rejections: list[Rejection],
    received: Sequence[Range] = (),
) -> AppendResult:
    """Store a batch durably: events, conflicts, rejections, exact copies and the offsets
    `received` (ranges_of the batch's records) in one transaction.

    Every copy of an id is judged against the copy that is stored (the first
    one ever, or the batch's first when the id is new), never against another
    refused copy: an exact copy that arrives after a conflicting one is a
    duplicate, not a conflict. When another writer stores one of the batch's ids
    between the check and the insert, the transaction is rolled back and the batch
    appended again: that id is then a duplicate or a conflict like any other.
    """
    for _ in range(CLAIM_ATTEMPTS - 1):
        try:
            return await _append_once(connection, events, rejections, received)
        except asyncpg.UniqueViolationError:
            continue
    return await _append_once(connection, events, rejections, received)


async def _append_once(
    connection: Connection,
    events: list[NewEvent],
    rejections: list[Rejection],
    received: Sequence[Range],
) -> AppendResult:
    result = AppendResult()
    first_of: dict[tuple[str, str], int] = {}
    for index, event in enumerate(events):
        first_of.setdefault((event.source, event.id), index)

    async with connection.transaction():
        if events:
            await connection.copy_records_to_table(
                "incoming_events",
                columns=_INCOMING_COLUMNS,
                records=[
                    _event_row(i, first_of[(event.source, event.id)] == i, event)
                    for i, event in enumerate(events)
                ],
            )
            inserted = await connection.fetch(_INSERT_EVENTS)
            inserted_ords = sorted(first_of[(row["source"], row["id"])] for row in inserted)
            result.accepted = [events[i] for i in inserted_ords]
            if result.accepted:
                # Delivered at commit: wakes the projector without polling.
                await event_store.announce_appended(connection)
            if len(inserted_ords) < len(events):
                not_inserted = sorted(set(range(len(events))) - set(inserted_ords))
                for row in await connection.fetch(_CLASSIFY_NOT_INSERTED, not_inserted):
                    event = events[row["ord"]]
                    if row["redelivered"]:
                        result.redelivered.append(event)
                    elif row["same_payload"]:
                        result.duplicates.append(event)
                    else:
                        result.conflicts.append(_conflict(event))
        all_rejections = [*rejections, *result.conflicts]
        if all_rejections:
            await connection.copy_records_to_table(
                "incoming_rejections",
                columns=_REJECTION_COLUMNS,
                records=[_rejection_row(r) for r in all_rejections],
            )
            await connection.execute(_INSERT_REJECTIONS)
        if result.duplicates:
            origins = [e.record.origin for e in result.duplicates]
            await connection.execute(
                _INSERT_DUPLICATES,
                [o.topic for o in origins],
                [o.partition for o in origins],
                [o.offset for o in origins],
                [e.source for e in result.duplicates],
                [e.id for e in result.duplicates],
            )
        if received:
            topics, partitions, firsts, lasts = (list(c) for c in zip(*received, strict=True))
            await connection.execute(_INSERT_RANGES, topics, partitions, firsts, lasts)
    return result


def _event_row(ord_: int, first_copy: bool, event: NewEvent) -> tuple[object, ...]:
    return (
        ord_,
        first_copy,
        event.source,
        event.id,
        event.type,
        event.organization_id,
        event.time,
        event.data_json,
        event.payload_sha256,
        event.record.origin.topic,
        event.record.origin.partition,
        event.record.origin.offset,
    )
