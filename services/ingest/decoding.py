"""From a Kafka record to a new event or a rejection with its reason: pure, no I/O.

Both CloudEvents Kafka bindings are accepted. Structured mode (content type
`application/cloudevents+json`, or none at all) carries the whole envelope as
the value and is validated from the bytes in one pass; binary mode carries the
attributes in `ce_*` headers and the data as the value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from schemas import EVENT_TYPES, FAMILIES, TYPED_EVENT, TypedEvent, family_of, upcast
from services.ingest.fast_path import decode_fast
from services.ingest.records import NewEvent, RawRecord, ReasonCode, Rejection

STRUCTURED = "application/cloudevents+json"
JSON = "application/json"
BINARY_ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "dataschema")
FAST_PATH_HEADERS = frozenset(
    [
        (),
        *(
            ((name, value.encode()),)
            for name in ("content-type", "Content-Type")
            for value in (STRUCTURED, JSON)
        ),
    ]
)
"""Header sets of a plain structured-mode record, the only ones the fast path is tried on."""


@dataclass(frozen=True)
class Limits:
    max_record_bytes: int = 256 * 1024
    max_future_s: float = 300.0
    max_future: timedelta = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_future", timedelta(seconds=self.max_future_s))


class Refused(Exception):
    def __init__(self, code: ReasonCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def decode(record: RawRecord, now: datetime, limits: Limits) -> NewEvent | Rejection:
    """Validate one record; never raises for bad input, it returns a Rejection.

    The common record takes the compiled path (`fast_path.py`); whatever it is
    not sure of is judged here in full.
    """
    value = record.value
    if record.headers in FAST_PATH_HEADERS and value and len(value) <= limits.max_record_bytes:
        event = decode_fast(record, now, limits.max_future)
        if event is not None:
            return event
    return decode_in_full(record, now, limits)


def decode_in_full(record: RawRecord, now: datetime, limits: Limits) -> NewEvent | Rejection:
    """`decode` without the compiled path: every record type, every reason worded."""
    try:
        event = _validate(record, limits)
    except Refused as refused:
        return Rejection(refused.code, refused.reason, record)
    rejection = _check_semantics(event, record, now, limits)
    if rejection is not None:
        return rejection
    return _new_event(upcast(event), record)


def _validate(record: RawRecord, limits: Limits) -> TypedEvent:
    value = record.value
    if not value:
        raise Refused(ReasonCode.EMPTY_MESSAGE, "the record has no value")
    if len(value) > limits.max_record_bytes:
        raise Refused(
            ReasonCode.OVERSIZED,
            f"the record is {len(value)} bytes, more than {limits.max_record_bytes}",
        )
    headers = {name.lower(): raw for name, raw in record.headers}
    content_type = _media_type(headers.get("content-type"))
    if "ce_specversion" in headers:
        if content_type not in (None, JSON):
            raise Refused(
                ReasonCode.WRONG_CONTENT_TYPE,
                f"binary mode needs content-type {JSON}, not {content_type}",
            )
        return _validated(_binary_envelope(headers, _json_object(value)))
    if content_type not in (None, STRUCTURED, JSON):
        raise Refused(
            ReasonCode.WRONG_CONTENT_TYPE,
            f"content-type {content_type} is neither {STRUCTURED} nor binary mode ({JSON} with "
            "ce_* headers)",
        )
    try:
        return TYPED_EVENT.validate_json(value)
    except ValidationError as error:
        # Parse again only to say precisely what is wrong; the fast path was one pass.
        _validated(_json_object(value))
        raise _refusal(error) from None


def _media_type(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("latin-1").split(";", 1)[0].strip().lower()


def _json_object(value: bytes) -> dict[str, Any]:
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Refused(ReasonCode.NOT_JSON, f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise Refused(ReasonCode.NOT_AN_OBJECT, f"JSON {type(document).__name__}, not an object")
    return document


def _binary_envelope(headers: dict[str, bytes], data: dict[str, Any]) -> dict[str, Any]:
    envelope: dict[str, Any] = {"data": data}
    for attribute in BINARY_ATTRIBUTES:
        raw = headers.get(f"ce_{attribute}")
        if raw is not None:
            try:
                envelope[attribute] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise Refused(
                    ReasonCode.INVALID_ENVELOPE, f"header ce_{attribute} is not UTF-8"
                ) from None
    return envelope


def _validated(envelope: dict[str, Any]) -> TypedEvent:
    try:
        return TYPED_EVENT.validate_python(envelope)
    except ValidationError as error:
        raise _refusal(error, envelope) from None


def _refusal(error: ValidationError, envelope: dict[str, Any] | None = None) -> Refused:
    first = error.errors(include_url=False)[0]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found") and envelope is not None:
        type_name = envelope.get("type")
        if isinstance(type_name, str) and family_of(type_name) in FAMILIES:
            known = sorted(n for n in EVENT_TYPES if family_of(n) == family_of(type_name))
            return Refused(
                ReasonCode.UNKNOWN_VERSION,
                f"{type_name} is not an accepted version; accepted: {', '.join(known)}",
            )
        if first["type"] == "union_tag_invalid":
            return Refused(ReasonCode.UNKNOWN_TYPE, f"unknown event type {type_name!r}")
    location = ".".join(str(part) for part in first["loc"][1:])  # [0] is the union tag
    in_data = location == "data" or location.startswith("data.")  # not datacontenttype
    code = ReasonCode.INVALID_DATA if in_data else ReasonCode.INVALID_ENVELOPE
    details = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or '(envelope)'}: {e['msg']}"
        for e in error.errors(include_url=False)[:5]
    )
    return Refused(code, details)


def _check_semantics(
    event: TypedEvent, record: RawRecord, now: datetime, limits: Limits
) -> Rejection | None:
    def refuse(code: ReasonCode, reason: str) -> Rejection:
        return Rejection(code, reason, record, event.source, event.id, event.type, event.subject)

    organization = getattr(event.data, "organization_id", None)
    if organization != event.subject:
        return refuse(
            ReasonCode.INVALID_ENVELOPE,
            f"subject {event.subject!r} differs from data.organization_id {organization!r}",
        )
    if record.key is None:
        return refuse(ReasonCode.MISSING_KEY, "the record has no key; key it by organization id")
    if record.key != event.subject.encode():
        return refuse(
            ReasonCode.KEY_MISMATCH,
            f"the record key {record.key[:64]!r} is not the organization id {event.subject!r}",
        )
    if event.time - now > limits.max_future:
        return refuse(
            ReasonCode.TIME_IN_FUTURE,
            f"time {event.time.isoformat()} is more than {limits.max_future_s:.0f} s ahead of "
            f"{now.isoformat()}",
        )
    inconsistency = data_inconsistency(event.data, now, limits)
    if inconsistency is not None:
        return refuse(ReasonCode.INVALID_DATA, inconsistency)
    return None


PAST_TIMES = ("started_at", "finished_at", "purchased_at", "corrects_time")
"""Data times that say when something happened: never further ahead than the envelope's."""


def data_inconsistency(data: object, now: datetime, limits: Limits) -> str | None:
    """What makes a payload inconsistent across its fields, which JSON Schema cannot say; else None.

    Each rule keeps an event the store could not count out of it (REVIEW A1, F4):
    a period that ends before it starts, a run-level correction without its
    scenario, a module-level one without its run, a module that finished before
    it started, a time in the future, a manual purchase with an automatic one's
    crossing.
    """
    fields = vars(data)
    for name in PAST_TIMES:
        value = fields.get(name)
        if value is not None and value - now > limits.max_future:
            return f"data.{name} {value.isoformat()} is in the future"
    started, finished = fields.get("started_at"), fields.get("finished_at")
    if started is not None and finished is not None and started > finished:
        return "data.started_at is after data.finished_at"
    start, end = fields.get("period_start"), fields.get("period_end")
    if start is not None and end is not None and end <= start:
        return "data.period_end is not after data.period_start"
    if fields.get("run_id") is not None and fields.get("scenario_id", "") is None:
        return "data.run_id needs data.scenario_id (a run belongs to a scenario)"
    if fields.get("module_id") is not None and fields.get("run_id", "") is None:
        return "data.module_id needs data.run_id (a module runs in a run)"
    crossing = fields.get("threshold_credits"), fields.get("remaining_credits")
    if fields.get("purchase") == "manual" and crossing != (None, None):
        return "data.threshold_credits and data.remaining_credits are an automatic purchase's"
    return None


def _new_event(event: TypedEvent, record: RawRecord) -> NewEvent:
    data_json = event.data.stored_json()
    digest = hashlib.sha256(
        f"{event.type}\n{event.subject}\n{event.time.isoformat()}\n{data_json}".encode()
    ).digest()
    return NewEvent(
        source=event.source,
        id=event.id,
        type=event.type,
        organization_id=event.subject,
        time=event.time,
        data_json=data_json,
        payload_sha256=digest,
        record=record,
    )
