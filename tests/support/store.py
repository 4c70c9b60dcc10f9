"""Putting events straight into an event store, the way ingest would."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import TypedEvent
from services.emitter.client import encode
from services.infra.database import Connection
from services.ingest.decoding import Limits, decode
from services.ingest.recorder import append, prepare_connection
from services.ingest.records import NewEvent, RawRecord, RecordOrigin


async def store(connection: Connection, events: list[TypedEvent], first_offset: int = 0) -> None:
    """Validate, upcast and append `events` in one batch, as ingest does."""
    await prepare_connection(connection)
    decoded = []
    for offset, event in enumerate(events, start=first_offset):
        value, headers = encode(event, "structured")
        record = RawRecord(
            RecordOrigin("test", 0, offset), event.subject.encode(), value, tuple(headers)
        )
        outcome = decode(record, datetime.now(UTC), Limits(max_future_s=10**9))
        assert isinstance(outcome, NewEvent), outcome
        decoded.append(outcome)
    await append(connection, decoded, [])
