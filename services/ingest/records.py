"""What ingest turns each Kafka record into: a new event for the store, or a rejection.

They are frozen msgspec structs rather than dataclasses: ingest makes three of them
per record, and a frozen dataclass's `__init__` (one `object.__setattr__` per field)
cost 3.5 µs for eight fields where a struct takes 0.25 µs, 7 % of ingest's time.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class RecordOrigin(msgspec.Struct, frozen=True):
    """Where a record came from in Kafka."""

    topic: str
    partition: int
    offset: int


class RawRecord(msgspec.Struct, frozen=True):
    """A Kafka record as ingest receives it, before any decoding."""

    origin: RecordOrigin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class NewEvent(msgspec.Struct, frozen=True):
    """A valid event, upcast to the newest version of its type, ready to append."""

    source: str
    id: str
    type: str
    organization_id: str
    time: datetime
    data_json: str
    payload_sha256: bytes
    record: RawRecord
    """The record it came from: its place in Kafka, and its bytes should it conflict."""


class ReasonCode(StrEnum):
    """Why a record did not become an event (stored in rejected_events.reason_code)."""

    EMPTY_MESSAGE = "empty_message"
    OVERSIZED = "oversized"
    WRONG_CONTENT_TYPE = "wrong_content_type"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"
    INVALID_ENVELOPE = "invalid_envelope"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_VERSION = "unknown_version"
    INVALID_DATA = "invalid_data"
    TIME_IN_FUTURE = "time_in_future"
    CONFLICT = "conflict"
    UNSTORABLE = "unstorable"
    """Decoded, but the store refused it (isolated from its batch, which landed)."""


class Rejection(msgspec.Struct, frozen=True):
    """A record that did not become an event, with the reason, kept whole."""

    reason_code: ReasonCode
    reason: str
    record: RawRecord
    source: str | None = None
    id: str | None = None
    type: str | None = None
    organization_id: str | None = None
