"""Every kind of bad record is refused with its own reason; good ones in both bindings pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from schemas import json_schema
from services.ingest.decoding import Limits, decode
from services.ingest.records import NewEvent, RawRecord, ReasonCode, RecordOrigin, Rejection

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MODULE_V2 = "com.metering.module_execution.completed.v2"
DATA: dict[str, Any] = json_schema(MODULE_V2)["examples"][0]
STRUCTURED = (("content-type", b"application/cloudevents+json"),)


def envelope(**changes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "runner-eu1",
        "type": MODULE_V2,
        "subject": "org-1",
        "time": "2026-11-24T09:30:01Z",
        "data": DATA,
        **changes,
    }


def record(
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...] = STRUCTURED,
    key: bytes | None = b"org-1",
) -> RawRecord:
    return RawRecord(RecordOrigin("events", 0, 7), key, value, headers)


def structured(**changes: Any) -> RawRecord:
    return record(json.dumps(envelope(**changes)).encode())


def rejected(outcome: NewEvent | Rejection) -> ReasonCode:
    assert isinstance(outcome, Rejection), f"expected a rejection, got {outcome}"
    assert outcome.reason
    return outcome.reason_code


def test_a_structured_event_becomes_a_new_event() -> None:
    outcome = decode(structured(), NOW, Limits())

    assert isinstance(outcome, NewEvent)
    assert (outcome.source, outcome.id, outcome.organization_id) == ("runner-eu1", "evt-1", "org-1")
    assert json.loads(outcome.data_json)["credits"] == "2.5"


def test_a_binary_mode_event_is_the_same_event_as_in_structured_mode() -> None:
    attributes = envelope()
    headers = (
        *tuple(
            (f"ce_{name}", str(attributes[name]).encode())
            for name in ("specversion", "id", "source", "type", "subject", "time")
        ),
        ("content-type", b"application/json"),
    )

    binary = decode(record(json.dumps(DATA).encode(), headers), NOW, Limits())
    plain = decode(structured(), NOW, Limits())

    assert isinstance(binary, NewEvent)
    assert isinstance(plain, NewEvent)
    assert binary.payload_sha256 == plain.payload_sha256
    assert binary.data_json == plain.data_json


def test_a_record_without_content_type_is_read_as_structured() -> None:
    outcome = decode(record(json.dumps(envelope()).encode(), headers=()), NOW, Limits())

    assert isinstance(outcome, NewEvent)


def test_an_older_version_is_stored_as_the_newest() -> None:
    v1 = {k: v for k, v in DATA.items() if k not in ("app", "action", "status")}
    v1["module_type"] = "openai:createCompletion"

    outcome = decode(
        structured(type="com.metering.module_execution.completed.v1", data=v1), NOW, Limits()
    )

    assert isinstance(outcome, NewEvent)
    assert outcome.type == MODULE_V2
    assert json.loads(outcome.data_json)["app"] == "openai"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (record(None), ReasonCode.EMPTY_MESSAGE),
        (record(b""), ReasonCode.EMPTY_MESSAGE),
        (record(b"x" * 300_000), ReasonCode.OVERSIZED),
        (record(b"{not json"), ReasonCode.NOT_JSON),
        (record(b"\xff\xfe"), ReasonCode.NOT_JSON),
        (record(b"[1, 2]"), ReasonCode.NOT_AN_OBJECT),
        (record(b'"text"'), ReasonCode.NOT_AN_OBJECT),
        (record(b"{}", (("content-type", b"text/plain"),)), ReasonCode.WRONG_CONTENT_TYPE),
        (structured(id=None), ReasonCode.INVALID_ENVELOPE),
        (structured(specversion="0.3"), ReasonCode.INVALID_ENVELOPE),
        (structured(extra="x"), ReasonCode.INVALID_ENVELOPE),
        (structured(type="com.example.unknown.v1"), ReasonCode.UNKNOWN_TYPE),
        (structured(type="com.metering.module_execution.completed.v7"), ReasonCode.UNKNOWN_VERSION),
        (structured(data={**DATA, "credits": "-1"}), ReasonCode.INVALID_DATA),
        (structured(data={**DATA, "credits": "1.0000001"}), ReasonCode.INVALID_DATA),
        (structured(data={**DATA, "credits": 2.5}), ReasonCode.INVALID_DATA),
        (structured(data={**DATA, "operations": "1"}), ReasonCode.INVALID_DATA),
        (
            structured(data={k: v for k, v in DATA.items() if k != "run_id"}),
            ReasonCode.INVALID_DATA,
        ),
        (structured(data={**DATA, "colour": "red"}), ReasonCode.INVALID_DATA),
        (structured(time="2027-01-01T00:00:00Z"), ReasonCode.TIME_IN_FUTURE),
        (structured(subject="org-2"), ReasonCode.INVALID_ENVELOPE),
        (record(json.dumps(envelope()).encode(), key=None), ReasonCode.MISSING_KEY),
        (record(json.dumps(envelope()).encode(), key=b"org-2"), ReasonCode.KEY_MISMATCH),
    ],
)
def test_bad_input_is_refused_with_its_reason(bad: RawRecord, reason: ReasonCode) -> None:
    assert rejected(decode(bad, NOW, Limits())) == reason


def test_an_unknown_version_names_the_accepted_ones() -> None:
    outcome = decode(structured(type="com.metering.module_execution.completed.v7"), NOW, Limits())

    assert isinstance(outcome, Rejection)
    assert "com.metering.module_execution.completed.v2" in outcome.reason


def test_invalid_data_says_which_field() -> None:
    outcome = decode(structured(data={**DATA, "credits": "1.0000001"}), NOW, Limits())

    assert isinstance(outcome, Rejection)
    assert "data.credits" in outcome.reason


def test_credits_survive_exactly() -> None:
    outcome = decode(structured(data={**DATA, "credits": "0.000001"}), NOW, Limits())

    assert isinstance(outcome, NewEvent)
    assert Decimal(json.loads(outcome.data_json)["credits"]) == Decimal("0.000001")
