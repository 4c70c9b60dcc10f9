"""Every kind of bad record is refused with its own reason; good ones in both bindings pass."""

from __future__ import annotations

import hashlib
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
        # envelope attributes whose names begin with "data" (found by the Kafka fuzz test)
        (structured(datacontenttype="text/xml"), ReasonCode.INVALID_ENVELOPE),
        (structured(dataschema=""), ReasonCode.INVALID_ENVELOPE),
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


PERIOD_STARTED = "com.metering.subscription.period_started.v1"


def subscription(timezone: str | None) -> dict[str, Any]:
    data = {
        "organization_id": "org-1",
        "plan": "pro",
        "plan_credits": "1000",
        "period_start": "2026-11-01T00:00:00Z",
        "period_end": "2026-12-01T00:00:00Z",
        "timezone": timezone,
    }
    return envelope(type=PERIOD_STARTED, data=data)


@pytest.mark.parametrize("zone", ["UTC+5", "Foo+5", "Mars/Olympus", "utc", "Europe/prague"])
def test_a_time_zone_that_is_not_an_iana_name_is_dead_lettered_with_the_reason(
    zone: str,
) -> None:
    # REVIEW B7 / A1: PostgreSQL reads `UTC+5` as five hours west and refuses `Mars/Olympus`.
    outcome = decode(record(json.dumps(subscription(zone)).encode()), NOW, Limits())

    assert isinstance(outcome, Rejection)
    assert outcome.reason_code == ReasonCode.INVALID_DATA
    assert "data.timezone" in outcome.reason
    assert "IANA" in outcome.reason


@pytest.mark.parametrize("zone", ["Europe/Prague", "Asia/Tokyo", "America/New_York", "UTC", None])
def test_iana_time_zone_names_are_accepted(zone: str | None) -> None:
    outcome = decode(record(json.dumps(subscription(zone)).encode()), NOW, Limits())

    assert isinstance(outcome, NewEvent), outcome


def test_the_same_instant_with_another_offset_or_key_order_is_the_same_payload() -> None:
    # REVIEW F2: a producer retry that re-serialises +01:00 as Z is a duplicate, not a conflict.
    original = envelope(time="2026-11-24T10:30:01+01:00")
    data = dict(DATA)
    data["started_at"] = "2026-11-24T10:30:00+01:00"
    original["data"] = data
    retried = envelope(time="2026-11-24T09:30:01Z")
    retried["data"] = dict(reversed(list({**data, "started_at": "2026-11-24T09:30:00Z"}.items())))

    first = decode(record(json.dumps(original).encode()), NOW, Limits())
    second = decode(record(json.dumps(retried).encode()), NOW, Limits())

    assert isinstance(first, NewEvent)
    assert isinstance(second, NewEvent)
    assert first.payload_sha256 == second.payload_sha256
    assert first.time == second.time
    assert first.time.utcoffset() is not None
    assert '"2026-11-24T09:30:00Z"' in first.data_json


@pytest.mark.parametrize("when", ["0001-01-01T00:30:00+01:00", "1999-12-31T23:00:00Z"])
def test_a_time_outside_the_contract_years_is_refused_not_a_crash(when: str) -> None:
    # REVIEW A2/D3: year 0001 with an offset overflowed in the store's encoder.
    outcome = decode(record(json.dumps(envelope(time=when)).encode()), NOW, Limits())

    assert isinstance(outcome, Rejection)
    assert outcome.reason_code == ReasonCode.INVALID_ENVELOPE


ADJUSTED = "com.metering.credits.adjusted.v1"
CORRECTION: dict[str, Any] = {
    "organization_id": "org-1",
    "scenario_id": "scn-7",
    "run_id": "run-42",
    "credits": "-2.5",
    "reason_code": "support",
    "corrects_event": {"source": "runner-eu1", "id": "evt-0"},
    "corrects_time": "2026-11-20T10:00:00Z",
}


@pytest.mark.parametrize(
    ("type_name", "data", "reason"),
    [
        # REVIEW A1: each of these was accepted and then stopped the projector.
        (
            PERIOD_STARTED,
            {**subscription("UTC")["data"], "period_end": "2026-11-01T00:00:00Z"},
            "period_end is not after",
        ),
        (ADJUSTED, {**CORRECTION, "scenario_id": None}, "run_id needs data.scenario_id"),
        (ADJUSTED, {**CORRECTION, "run_id": None, "module_id": "3"}, "module_id needs data.run_id"),
        # REVIEW F4: times that cannot be.
        (
            MODULE_V2,
            {**DATA, "started_at": "2026-11-24T09:30:05Z"},
            "started_at is after data.finished_at",
        ),
        (ADJUSTED, {**CORRECTION, "corrects_time": "2027-01-01T00:00:00Z"}, "in the future"),
    ],
)
def test_a_payload_inconsistent_across_its_fields_is_dead_lettered_with_the_reason(
    type_name: str, data: dict[str, Any], reason: str
) -> None:
    outcome = decode(
        record(json.dumps(envelope(type=type_name, data=data)).encode()), NOW, Limits()
    )

    assert isinstance(outcome, Rejection)
    assert outcome.reason_code == ReasonCode.INVALID_DATA
    assert reason in outcome.reason


@pytest.mark.parametrize(
    ("type_name", "data"),
    [
        (ADJUSTED, CORRECTION),
        (ADJUSTED, {**CORRECTION, "scenario_id": None, "run_id": None}),  # organization-level
        (PERIOD_STARTED, subscription("UTC")["data"]),  # a period ending in the future is fine
    ],
)
def test_consistent_payloads_pass_the_cross_field_rules(
    type_name: str, data: dict[str, Any]
) -> None:
    outcome = decode(
        record(json.dumps(envelope(type=type_name, data=data)).encode()), NOW, Limits()
    )

    assert isinstance(outcome, NewEvent), outcome


@pytest.mark.parametrize(
    "raw",
    [
        structured(source="runner\u0000eu1"),
        structured(id="evt\u00001"),
        record(
            json.dumps(
                envelope(
                    type=PERIOD_STARTED, data={**subscription("UTC")["data"], "plan": "pro\u0000"}
                )
            ).encode()
        ),
        record(
            json.dumps(DATA).encode(),
            (
                ("ce_specversion", b"1.0"),
                ("ce_id", b"evt\x001"),
                ("ce_source", b"runner-eu1"),
                ("ce_type", MODULE_V2.encode()),
                ("ce_subject", b"org-1"),
                ("ce_time", b"2026-11-24T09:30:01Z"),
                ("content-type", b"application/json"),
            ),
        ),
    ],
    ids=["structured source", "structured id", "data text", "binary header"],
)
def test_a_nul_character_anywhere_is_refused_by_the_contract(raw: RawRecord) -> None:
    # REVIEW A1/A2: PostgreSQL text and jsonb cannot hold NUL; accepted, it
    # failed the append and blocked the partition.
    outcome = decode(raw, NOW, Limits())

    assert isinstance(outcome, Rejection)
    assert outcome.reason_code in (ReasonCode.INVALID_ENVELOPE, ReasonCode.INVALID_DATA)


@pytest.mark.parametrize(
    ("changes", "what"),
    [
        ({"subject": "team/a", "data": {**DATA, "organization_id": "team/a"}}, "organization"),
        ({"data": {**DATA, "scenario_id": "scn/1"}}, "scenario"),
        ({"data": {**DATA, "run_id": "run/1"}}, "run"),
        ({"data": {**DATA, "credits": "1000000000"}}, "credits at the cap"),
    ],
)
def test_ids_the_api_cannot_serve_and_credits_over_the_cap_are_refused(
    changes: dict[str, Any], what: str
) -> None:
    # REVIEW D4: `/` in an id was accepted and could never be queried; REVIEW
    # G8: credits up to 10^12 per event could overflow a period's sum.
    raw = record(
        json.dumps(envelope(**changes)).encode(),
        key=b"team/a" if "subject" in changes else b"org-1",
    )
    outcome = decode(raw, NOW, Limits())

    assert isinstance(outcome, Rejection), what
    assert outcome.reason_code in (ReasonCode.INVALID_ENVELOPE, ReasonCode.INVALID_DATA)


def test_credits_just_under_the_cap_pass() -> None:
    outcome = decode(structured(data={**DATA, "credits": "999999999.999999"}), NOW, Limits())

    assert isinstance(outcome, NewEvent)


RUN_STARTED = "com.metering.scenario_run.started.v1"
OLD_RUN_DATA = {
    "organization_id": "org-1",
    "scenario_id": "scn-1",
    "run_id": "run-1",
    "trigger": "manual",
    "started_at": "2026-11-24T09:30:00Z",
}
OLD_RUN_STORED = (
    '{"organization_id":"org-1","scenario_id":"scn-1","run_id":"run-1","trigger":"manual",'
    '"started_at":"2026-11-24T09:30:00Z"}'
)
"""How the store held a run event before `kind` existed (its digest covers this text)."""


def test_a_field_added_later_leaves_older_events_as_they_were_stored() -> None:
    # An event stored before `kind` existed and delivered again after: the same data
    # text and digest, so the store sees a duplicate, not a conflict.
    old = decode(structured(type=RUN_STARTED, data=OLD_RUN_DATA), NOW, Limits())
    explicit = decode(
        structured(type=RUN_STARTED, data={**OLD_RUN_DATA, "kind": "ai_agent"}), NOW, Limits()
    )
    assert isinstance(old, NewEvent)
    assert isinstance(explicit, NewEvent)
    assert old.data_json == OLD_RUN_STORED
    assert (
        old.payload_sha256
        == hashlib.sha256(
            f"{RUN_STARTED}\norg-1\n2026-11-24T09:30:01+00:00\n{OLD_RUN_STORED}".encode()
        ).digest()
    )
    assert json.loads(explicit.data_json)["kind"] == "ai_agent"
    assert explicit.payload_sha256 != old.payload_sha256


def test_only_an_automatic_purchase_says_the_crossing_that_decided_it() -> None:
    purchase = {
        "organization_id": "org-1",
        "credits": "1000",
        "purchase": "automatic",
        "purchased_at": "2026-11-24T09:30:00Z",
        "threshold_credits": "500",
        "remaining_credits": "-12.5",
    }
    kind = "com.metering.credits.purchased.v1"
    automatic = decode(structured(type=kind, data=purchase), NOW, Limits())
    manual = decode(structured(type=kind, data={**purchase, "purchase": "manual"}), NOW, Limits())

    assert isinstance(automatic, NewEvent)
    assert json.loads(automatic.data_json)["remaining_credits"] == "-12.5"
    assert rejected(manual) == ReasonCode.INVALID_DATA
