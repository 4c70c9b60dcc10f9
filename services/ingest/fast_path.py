"""The compiled path for the common record: a structured-mode module execution.

Nearly every record is a `module_execution.completed` event of the newest
version in structured mode. This path takes it from bytes to a `NewEvent`
without pydantic: msgspec decodes the envelope and data into structs (types,
required and unknown fields, lengths, bounds and literals checked in C), one
regular expression checks every identifier and the credits at once, and each
distinct timestamp string is parsed once by the contract's own validator and
remembered. The stored JSON is written directly: every field of this type is
an identifier, a number, a pattern-checked string or a literal, so none needs
escaping.

It only ever accepts. Anything it is not sure of (another type, binary mode, a
field that fails a check, a semantic rule broken, text outside ASCII) makes it
answer None, and the full decoder (`decoding.py`) judges the record and words
the rejection. `tests/unit/test_fast_path.py` checks on generated documents
that whatever this path accepts, the full decoder accepts with the same row.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Literal

import msgspec

from schemas.catalog import MODULE_EXECUTION_COMPLETED, NEWEST
from schemas.fields import CREDITS_PATTERN, IDENTIFIER_PATTERN, MAX_COUNT, timestamp_in_utc
from schemas.payloads import ModuleExecutionCompletedV2
from services.ingest.records import NewEvent, RawRecord

TYPE = f"{MODULE_EXECUTION_COMPLETED}.v2"

Short = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _Data(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: Short
    scenario_id: Short
    run_id: Short
    module_id: Short
    app: Short
    action: Short
    operations: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
    credits: Annotated[str, msgspec.Meta(max_length=16)]
    started_at: Annotated[str, msgspec.Meta(max_length=32)]
    finished_at: Annotated[str, msgspec.Meta(max_length=32)]
    status: Literal["success", "warning", "error"]


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    specversion: Literal["1.0"]
    id: Text
    source: Text
    type: Literal["com.metering.module_execution.completed.v2"]
    subject: Short
    time: Annotated[str, msgspec.Meta(max_length=32)]
    data: _Data
    datacontenttype: Literal["application/json"] | None = None


if tuple(_Data.__struct_fields__) != tuple(ModuleExecutionCompletedV2.model_fields):
    raise RuntimeError("fast_path._Data no longer mirrors ModuleExecutionCompletedV2")
if NEWEST[MODULE_EXECUTION_COMPLETED].payload is not ModuleExecutionCompletedV2:
    raise RuntimeError(f"{TYPE} is no longer the newest version: the fast path would skip upcasts")

_DECODER = msgspec.json.Decoder(_Envelope)
_IDENTIFIER = IDENTIFIER_PATTERN.removeprefix("^").removesuffix("$")
_CREDITS = CREDITS_PATTERN.removeprefix("^").removesuffix("$")
# The six identifiers of the data, then the credits, joined by newlines (which
# neither may hold): one match per record instead of seven.
_FIELDS = re.compile(f"(?:{_IDENTIFIER}\n){{6}}{_CREDITS}")


class Instant(msgspec.Struct, frozen=True):
    """A timestamp string as the contract reads it, in the forms the store needs."""

    utc: datetime
    json: str
    """As pydantic writes it in the stored data: `"2026-11-20T10:00:00Z"`."""
    iso: str
    """As `datetime.isoformat` writes it, for the payload digest."""


@lru_cache(maxsize=1 << 16)
def instant(text: str) -> Instant | None:
    """The contract's validator, once per distinct string; None if it refuses it."""
    try:
        utc = timestamp_in_utc(text)
    except ValueError:
        return None
    iso = utc.isoformat()
    return Instant(utc, f'"{iso.removesuffix("+00:00")}Z"', iso)  # pydantic's form of a UTC time


def decode_fast(record: RawRecord, now: datetime, max_future: timedelta) -> NewEvent | None:
    """The record as a new event, or None: the full decoder must judge it."""
    try:
        envelope = _DECODER.decode(record.value)  # type: ignore[arg-type]
    except (msgspec.DecodeError, TypeError):
        return None
    data = envelope.data
    organization = data.organization_id
    if (
        envelope.subject != organization
        or record.key != organization.encode()
        or not (envelope.id.isascii() and envelope.source.isascii())
        or "\x00" in envelope.id
        or "\x00" in envelope.source
    ):
        return None
    joined = "\n".join(
        (organization, data.scenario_id, data.run_id, data.module_id, data.app, data.action)
    )
    if _FIELDS.fullmatch(f"{joined}\n{data.credits}") is None:
        return None
    time, started, finished = (
        instant(envelope.time),
        instant(data.started_at),
        instant(data.finished_at),
    )
    if time is None or started is None or finished is None:
        return None
    latest = now + max_future
    if time.utc > latest or finished.utc > latest or started.utc > finished.utc:
        return None
    data_json = (
        f'{{"organization_id":"{organization}","scenario_id":"{data.scenario_id}",'
        f'"run_id":"{data.run_id}","module_id":"{data.module_id}","app":"{data.app}",'
        f'"action":"{data.action}","operations":{data.operations},"credits":"{data.credits}",'
        f'"started_at":{started.json},"finished_at":{finished.json},"status":"{data.status}"}}'
    )
    digest = hashlib.sha256(f"{TYPE}\n{organization}\n{time.iso}\n{data_json}".encode()).digest()
    return NewEvent(
        source=envelope.source,
        id=envelope.id,
        type=TYPE,
        organization_id=organization,
        time=time.utc,
        data_json=data_json,
        payload_sha256=digest,
        record=record,
    )
