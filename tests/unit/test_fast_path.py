"""The compiled path accepts only what the full decoder accepts, and stores it alike.

Documents are valid module executions or near misses of one (the contract
test's mutations, `test_contract_agreement.py`), with every spelling of a time,
in envelopes that are themselves valid or one change away from it. Whenever the fast path answers,
the full decoder must answer with an equal event: same source, id, type,
organization, time, stored JSON and payload digest.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas.fields import CREDITS_PATTERN, IDENTIFIER_PATTERN, MAX_COUNT
from services.ingest.decoding import Limits, decode, decode_in_full
from services.ingest.fast_path import TYPE, decode_fast, instant
from services.ingest.records import NewEvent, RawRecord, RecordOrigin
from tests.unit.test_contract_agreement import near_misses

EXAMPLES = int(os.environ.get("METERING_CONTRACT_EXAMPLES", "500"))
LIMITS = Limits()
STRUCTURED = (("content-type", b"application/cloudevents+json"),)
LATE = datetime(2100, 1, 1, tzinfo=UTC)

times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
offsets = st.sampled_from(["Z", "+00:00", "+01:00", "-05:30", "+23:59"])


@st.composite
def stamps(draw: st.DrawFn) -> str:
    """RFC 3339 times in every spelling the contract allows, and some it does not."""
    moment = draw(times)
    digits = draw(st.sampled_from([0, 1, 3, 6]))
    fraction = f".{moment.microsecond:06d}"[: digits + 1] if digits else ""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + draw(offsets)
    return draw(st.sampled_from([text] * 8 + [text.replace("T", "t"), text + " "]))


mostly = st.sampled_from([True] * 9 + [False])
identifiers = st.from_regex(IDENTIFIER_PATTERN.strip("^$"), fullmatch=True)


@st.composite
def module_executions(draw: st.DrawFn) -> dict[str, Any]:
    started = draw(stamps())
    data = {
        "organization_id": draw(identifiers),
        **{name: draw(identifiers) for name in ("scenario_id", "run_id", "module_id")},
        **{name: draw(identifiers) for name in ("app", "action")},
        "operations": draw(st.integers(0, MAX_COUNT + 1)),
        "credits": draw(st.from_regex(CREDITS_PATTERN.strip("^$"), fullmatch=True)),
        "started_at": started,
        "finished_at": draw(st.just(started) | stamps()),
        "status": draw(st.sampled_from(["success", "warning", "error", "failed"])),
    }
    return draw(near_misses(data)) if draw(st.booleans()) else data


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[dict[str, Any], bytes | None]:
    data = draw(module_executions())
    organization = data.get("organization_id")
    subject = organization if draw(mostly) else draw(st.text(max_size=4))
    unusual = st.sampled_from(["rünner", "a\x00b", "x" * 257, "", "é" * 256])
    envelope = {
        "specversion": "1.0",
        "id": draw(st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True) | st.text(max_size=12)),
        "source": draw(st.just("runner") | unusual),
        "type": TYPE,
        "subject": subject,
        "time": draw(stamps()),
        "data": data,
    }
    if draw(st.booleans()):
        envelope["datacontenttype"] = draw(st.sampled_from(["application/json", "text/plain"]))
    key = str(subject).encode() if draw(mostly) else b"other"
    if draw(st.booleans()):
        return draw(near_misses(envelope)), key
    return envelope, key


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    drawn=envelopes(),
    now=st.sampled_from([LATE] * 3 + [None]).flatmap(lambda n: st.just(n) if n else times),
)
def test_what_the_fast_path_accepts_the_full_decoder_accepts_alike(
    drawn: tuple[dict[str, Any], bytes | None], now: datetime
) -> None:
    document, key = drawn
    record = RawRecord(RecordOrigin("events", 0, 1), key, json.dumps(document).encode(), STRUCTURED)

    fast = decode_fast(record, now, LIMITS.max_future)
    full = decode_in_full(record, now, LIMITS)

    event(f"fast path {'accepted' if fast else 'passed'}; full decoder {type(full).__name__}")
    if fast is not None:
        assert full == fast


NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def common_record(time: str = "2026-11-24T09:30:00Z", **data: object) -> RawRecord:
    """A structured module execution of org-1, with `data` fields changed."""
    envelope = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "runner-eu1",
        "type": TYPE,
        "subject": "org-1",
        "time": time,
        "data": {
            "organization_id": "org-1",
            "scenario_id": "scn-1",
            "run_id": "run-1",
            "module_id": "3",
            "app": "openai",
            "action": "createCompletion",
            "operations": 1,
            "credits": "1",
            "started_at": "2026-11-24T09:30:00Z",
            "finished_at": "2026-11-24T09:30:00Z",
            "status": "success",
            **data,
        },
    }
    return RawRecord(RecordOrigin("events", 0, 1), b"org-1", json.dumps(envelope).encode(), ())


def test_the_common_record_takes_the_fast_path_and_stores_what_the_full_decoder_stores() -> None:
    record = common_record(
        "2026-11-24T10:30:01.25+01:00", credits="0.000000", finished_at="2026-11-24T09:30:01.250Z"
    )

    fast = decode_fast(record, NOW, LIMITS.max_future)

    assert fast is not None
    assert fast == decode_in_full(record, NOW, LIMITS) == decode(record, NOW, LIMITS)
    assert fast.time == datetime(2026, 11, 24, 9, 30, 1, 250000, tzinfo=UTC)
    assert '"finished_at":"2026-11-24T09:30:01.250000Z"' in fast.data_json


def test_what_the_fast_path_is_not_sure_of_is_judged_in_full() -> None:
    record = common_record(operations=2.0)  # an integer to JSON Schema, not to msgspec

    assert decode_fast(record, NOW, LIMITS.max_future) is None
    outcome = decode(record, NOW, LIMITS)
    assert isinstance(outcome, NewEvent)
    assert '"operations":2' in outcome.data_json


def test_each_timestamp_string_is_read_once() -> None:
    instant.cache_clear()
    for _ in range(3):
        assert instant("2026-11-24T09:30:00+01:00") == instant("2026-11-24T09:30:00+01:00")
    assert instant.cache_info().hits == 5
    assert instant("2026-02-30T00:00:00Z") is None
    read = instant("2026-11-24T09:30:00+01:00")
    assert read is not None
    assert read.utc == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert (read.json, read.iso) == ('"2026-11-24T08:30:00Z"', "2026-11-24T08:30:00+00:00")
