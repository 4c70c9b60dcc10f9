"""Dead letters for operators: list what was refused, and send a record again.

A replay puts the stored record (its exact bytes, key and headers, or a
corrected value) back on the events topic, so it takes the normal path:
decoded, validated and deduplicated as always. It carries a
`metering_replay_of` header naming the rejection it comes from.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaProducer

from services.infra.database import Connection

LIST = """
SELECT rejection_id, rejected_at, reason_code, reason, source, id, organization_id
FROM rejected_events
WHERE ($1::text IS NULL OR reason_code = $1) AND ($2::text IS NULL OR organization_id = $2)
ORDER BY rejection_id DESC LIMIT $3
"""

RECORD = "SELECT kafka_key, kafka_headers, raw FROM rejected_events WHERE rejection_id = $1"


@dataclass(frozen=True)
class Rejected:
    rejection_id: int
    rejected_at: datetime
    reason_code: str
    reason: str
    source: str | None
    id: str | None
    organization_id: str | None


@dataclass(frozen=True)
class StoredRecord:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class NoSuchRejection(Exception):
    """No rejected record has that id."""


async def rejected(
    connection: Connection, reason: str | None, organization: str | None, limit: int
) -> list[Rejected]:
    """The newest rejected records, optionally of one reason or organization."""
    rows = await connection.fetch(LIST, reason, organization, limit)
    return [Rejected(**dict(row)) for row in rows]


async def stored_record(connection: Connection, rejection_id: int) -> StoredRecord:
    """The record as it arrived: bytes, key, headers (base64-kept values decoded)."""
    row = await connection.fetchrow(RECORD, rejection_id)
    if row is None:
        raise NoSuchRejection(f"no rejected record {rejection_id}")
    headers = []
    for name, value in json.loads(row["kafka_headers"] or "{}").items():
        if isinstance(value, dict):
            headers.append((name, base64.b64decode(value["base64"])))
        else:
            headers.append((name, str(value).encode()))
    return StoredRecord(row["kafka_key"], row["raw"] or b"", headers)


async def send_again(bootstrap: str, topic: str, record: StoredRecord, rejection_id: int) -> None:
    """Put `record` on `topic` for ingest to take again."""
    headers = [
        *((name, value) for name, value in record.headers if name != "metering_replay_of"),
        ("metering_replay_of", str(rejection_id).encode()),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, record.value, key=record.key, headers=headers)
    finally:
        await producer.stop()
