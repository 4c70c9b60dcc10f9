"""Bad Kafka records, generated from the JSON Schemas and mutated, each with the reasons
ingest may give for refusing it.

A record is bad by construction: either the contract itself refuses it (the
mutated document is checked against the schema files, not against the code
under test), or it breaks a rule the schemas cannot express and whose reason is
fixed (a key that is not the organization, a time in the future, a period that
ends before it starts, a stored id with another payload). Every mutation keeps
the record's place in the stream, so the test can find it in the dead letters
by partition and offset.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas import TypedEvent
from schemas.catalog import json_schema
from services.emitter.client import Mode, encode
from tests.support.contract import event_accepts, property_accepts

STRUCTURED = [("content-type", b"application/cloudevents+json")]
ENVELOPE = "cloudevent"
BINARY_ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "dataschema")
"""The attributes binary mode carries as ce_* headers (as ingest reads them)."""

CANDIDATES: list[Any] = [
    None,
    [],
    [1, 2],
    {"nested": {"deep": 1}},
    True,
    False,
    1.5,
    -1,
    0,
    10**30,
    1e308,
    "",
    " ",
    "\u0000",
    "open\u0000ai",
    "x" * 5000,
    "org/1",
    "../..",
    "\U0001f642",
    "\ud7ff\ufffd",
    "1e3",
    "-1",
    "0.0000001",
    "1000000000",
    "999999999999999999999999",
    "NaN",
    "Infinity",
    "0001-01-01T00:00:00Z",
    "1999-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-11-20T08:00:00",
    "2026-02-30T08:00:00Z",
    "2026-11-20T08:00:00+25:00",
    "2026-11-20 08:00:00Z",
    "2026-11-20T24:00:00Z",
    "Mars/Olympus_Mons",
    "UTC+5",
    "com.metering.nothing.v1",
    "com.metering.module_execution.completed.v9",
]
"""Values any property's schema may refuse: wrong types, NULs, huge and tiny
numbers, extreme and malformed times, unknown zones and types. For each
property, those its own schema refuses are the ones used."""

GARBAGE_HEADERS: list[bytes] = [b"\xff\xfe\x00", b"\x00", b"\xc3\x28", b"\x80" * 40]


@dataclass(frozen=True)
class Record:
    """One Kafka record to send, and what ingest may say of it."""

    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]
    kind: str
    """The mutation that made it (or "good", "duplicate")."""
    reasons: frozenset[str] = frozenset()
    """The reason codes it may be dead-lettered with; empty for a good record."""
    after: int | None = None
    """Index, in the good records, of the record this one must follow (conflicts)."""


def good(event: TypedEvent, rng: random.Random, kind: str = "good") -> Record:
    """A valid event in one of the two bindings, sometimes with a garbage extra header."""
    mode: Mode = rng.choice(["structured", "binary"])
    value, headers = encode(event, mode)
    if rng.random() < 0.05:  # headers ingest does not read may hold any bytes
        headers = [*headers, ("x-trace", rng.choice(GARBAGE_HEADERS))]
    return Record(value, event.subject.encode(), headers, kind)


@dataclass
class Mutator:
    """Makes bad records from good events."""

    rng: random.Random
    now: datetime
    made: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def bad(self, template: TypedEvent, original: int) -> Record:
        """A bad record made from `template` (the good record at index `original`)."""
        self.made += 1
        document = template.model_dump(mode="json", exclude_none=True)
        document["id"] = f"fuzz-{self.made}"
        document["source"] = "fuzz"
        while True:
            name, mutation = self.rng.choice(MUTATIONS)
            record = mutation(self, document, template, original)
            if record is not None:
                self.kinds[name] = self.kinds.get(name, 0) + 1
                return record

    def _binding(self) -> Mode:
        return "binary" if self.rng.random() < 0.5 else "structured"

    def _send(
        self,
        document: dict[str, Any],
        kind: str,
        reasons: set[str],
        *,
        mode: Mode | None = None,
        key: bytes | None = None,
        after: int | None = None,
    ) -> Record:
        """The record for a document, in a binding; keyed by its subject unless told."""
        mode = mode or self._binding()
        subject = document.get("subject")
        if key is None:
            key = subject.encode() if isinstance(subject, str) else b"org-1"
        if mode == "structured":
            value = json.dumps(document).encode()
            return Record(value, key, STRUCTURED, kind, frozenset(reasons), after)
        headers = [
            (f"ce_{a}", str(document[a]).encode()) for a in BINARY_ATTRIBUTES if a in document
        ]
        headers.append(("content-type", b"application/json"))
        value = json.dumps(document.get("data")).encode()
        return Record(value, key, headers, kind, frozenset(reasons), after)

    def _refused_value(self, schema_name: str, prop: str, strings_only: bool) -> Any:
        refused = [
            v
            for v in CANDIDATES
            if not property_accepts(schema_name, prop, v)
            and (isinstance(v, str) or not strings_only)
        ]
        return self.rng.choice(refused) if refused else None


def _as_received(document: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """The envelope ingest would see: in binary mode, attributes are header strings."""
    if mode == "structured":
        return document
    received: dict[str, Any] = {"data": document.get("data")}
    for attribute in BINARY_ATTRIBUTES:
        if attribute in document:
            received[attribute] = str(document[attribute])
    return received


def _data_field(
    m: Mutator, document: dict[str, Any], template: TypedEvent, _: int
) -> Record | None:
    """One data property gets a value its schema refuses, or goes missing, or one is added."""
    schema = json_schema(template.type)
    mutated = json.loads(json.dumps(document))
    roll = m.rng.random()
    if roll < 0.1:
        mutated["data"].pop(m.rng.choice(schema["required"]))
    elif roll < 0.2:
        mutated["data"]["surprise"] = m.rng.choice(CANDIDATES)
    else:
        prop = m.rng.choice(sorted(schema["properties"]))
        value = m._refused_value(template.type, prop, strings_only=False)
        if value is None:
            return None
        mutated["data"][prop] = value
    mode = m._binding()
    if event_accepts(_as_received(mutated, mode)):
        return None
    return m._send(mutated, "data_field", {"invalid_data"}, mode=mode)


def _envelope_field(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    """One envelope attribute gets a value the CloudEvent schema refuses, or goes missing."""
    schema = json_schema(ENVELOPE)
    mutated = json.loads(json.dumps(document))
    mode = m._binding()
    if m.rng.random() < 0.15:
        prop = m.rng.choice([p for p in schema["required"] if p != "data"])
        del mutated[prop]
    else:
        names = sorted(schema["properties"]) if mode == "structured" else list(BINARY_ATTRIBUTES)
        prop = m.rng.choice(names)
        value = m._refused_value(ENVELOPE, prop, strings_only=mode == "binary")
        if value is None:
            return None
        mutated[prop] = value
    if event_accepts(_as_received(mutated, mode)):
        return None
    reasons = {"invalid_envelope", "unknown_type", "unknown_version"}
    if prop == "data":
        reasons |= {"invalid_data", "not_an_object"}
    if prop == "subject" and mode == "structured":
        reasons.add("key_mismatch")  # the record stays keyed by the original subject
    key = (document["subject"]).encode()
    return m._send(mutated, "envelope_field", reasons, mode=mode, key=key)


def _broken_bytes(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    """Valid JSON cut short, or with a byte JSON cannot hold (not UTF-8, a raw NUL)."""
    record = m._send(document, "", set())
    value = record.value or b""
    at = m.rng.randrange(1, len(value) - 1)
    roll = m.rng.random()
    if roll < 0.4:
        value, kind = value[:at], "broken_json"
    elif roll < 0.7:
        value, kind = value[:at] + b"\xff" + value[at:], "not_utf8"
    else:
        value, kind = value[:at] + b"\x00" + value[at:], "raw_nul"
    return Record(value, record.key, record.headers, kind, frozenset({"not_json"}))


def _not_an_object(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    value = m.rng.choice([b"[]", b"[1,2]", b"42", b'"event"', b"null", b"true"])
    headers = (
        STRUCTURED if m.rng.random() < 0.5 else m._send(document, "", set(), mode="binary").headers
    )
    return Record(
        value, document["subject"].encode(), headers, "not_an_object", frozenset({"not_an_object"})
    )


def _empty(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    value = m.rng.choice([b"", None])
    return Record(
        value, document["subject"].encode(), STRUCTURED, "empty", frozenset({"empty_message"})
    )


def _oversized(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    if m.rng.random() > 0.05:  # a few: each is 300 kB on the wire
        return None
    value = json.dumps(document).encode() + b" " * 300_000
    return Record(
        value, document["subject"].encode(), STRUCTURED, "oversized", frozenset({"oversized"})
    )


def _content_type(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    """A content type neither binding accepts, or garbage bytes in its place."""
    record = m._send(document, "", set())
    wrong = m.rng.choice([b"text/plain", b"application/xml", b"application/avro", b"\xff\xfe"])
    headers = [(k, wrong if k == "content-type" else v) for k, v in record.headers]
    return Record(
        record.value, record.key, headers, "content_type", frozenset({"wrong_content_type"})
    )


def _garbage_ce_header(
    m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int
) -> Record | None:
    """Binary mode with an attribute header that is not UTF-8 or holds a NUL."""
    record = m._send(document, "", set(), mode="binary")
    target = f"ce_{m.rng.choice(['id', 'source', 'type', 'subject', 'time'])}"
    garbage = m.rng.choice(GARBAGE_HEADERS)
    headers = [(k, garbage if k == target else v) for k, v in record.headers]
    return Record(
        record.value,
        record.key,
        headers,
        "garbage_ce_header",
        frozenset({"invalid_envelope", "unknown_type"}),
    )


def _key(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    """No key, or a key that is not the organization: ordering per organization breaks."""
    if m.rng.random() < 0.5:
        record = m._send(document, "", set())
        return Record(record.value, None, record.headers, "no_key", frozenset({"missing_key"}))
    key = m.rng.choice([b"another-org", b"\xff\x00", b"x" * 1000])
    return m._send(document, "wrong_key", {"key_mismatch"}, key=key)


def _subject(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    """A subject that is not the payload's organization (both valid identifiers)."""
    mutated = {**document, "subject": "someone-else"}
    return m._send(mutated, "subject_mismatch", {"invalid_envelope"}, key=b"someone-else")


def _future(m: Mutator, document: dict[str, Any], template: TypedEvent, _o: int) -> Record | None:
    """An event time, or a data time saying when something happened, days ahead of now."""
    ahead = (m.now + timedelta(days=m.rng.randint(1, 300))).isoformat()
    mutated = json.loads(json.dumps(document))
    past = [k for k in ("started_at", "purchased_at", "corrects_time") if k in mutated["data"]]
    if past and m.rng.random() < 0.5:
        mutated["data"][past[0]] = ahead
        if "finished_at" in mutated["data"]:
            mutated["data"]["finished_at"] = ahead
        return m._send(mutated, "future_data_time", {"invalid_data"})
    mutated["time"] = ahead
    return m._send(mutated, "future_time", {"time_in_future"})


def _backwards(m: Mutator, document: dict[str, Any], _t: TypedEvent, _o: int) -> Record | None:
    """A run or module that finishes before it starts; a period that ends before it starts."""
    data = json.loads(json.dumps(document["data"]))
    for first, last in (("started_at", "finished_at"), ("period_start", "period_end")):
        if first in data and last in data:
            data[first], data[last] = data[last], data[first]
            if data[first] == data[last]:
                return None
            return m._send({**document, "data": data}, "backwards", {"invalid_data"})
    return None


def _conflict(
    m: Mutator, document: dict[str, Any], template: TypedEvent, original: int
) -> Record | None:
    """The stored event's own source and id with other credits, sent after it."""
    if "credits" not in document["data"]:
        return None
    mutated = json.loads(json.dumps(document))
    mutated["id"], mutated["source"] = template.id, template.source
    mutated["data"]["credits"] = str(Decimal(mutated["data"]["credits"]) + 1)
    return m._send(mutated, "conflict", {"conflict"}, after=original)


Mutation = Callable[[Mutator, dict[str, Any], TypedEvent, int], Record | None]

MUTATIONS: list[tuple[str, Mutation]] = [
    *[("data_field", _data_field)] * 6,
    *[("envelope_field", _envelope_field)] * 4,
    *[("broken_bytes", _broken_bytes)] * 2,
    ("not_an_object", _not_an_object),
    ("empty", _empty),
    ("oversized", _oversized),
    ("content_type", _content_type),
    ("garbage_ce_header", _garbage_ce_header),
    ("key", _key),
    ("subject", _subject),
    ("future", _future),
    ("backwards", _backwards),
    ("conflict", _conflict),
]
