"""Ten thousand bad records through real Kafka, interleaved with good ones (issue 11, the proof).

The bad records are generated from the JSON Schemas and mutated (tests/support/fuzz.py):
bytes, NULs, huge values, extreme times and numbers, wrong types, broken JSON,
wrong content types, oversized values, garbage headers, both bindings. The good
ones are a generated history (periods, runs, corrections, purchases, duplicates,
conflicting copies) and bulk module executions, some with garbage in headers
ingest does not read. Ingest and the projector run as real processes throughout.

Every good event is stored once and counted once in the read models (the
oracle's figures), every bad record is in the dead letters, by its own
partition and offset, with one of the reasons it may be given; no process
exits, and the pipeline never goes more than a few seconds without progress
while records wait.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.stack.local import Endpoints
from schemas import TypedEvent
from tests.support.events import bulk_executions
from tests.support.fuzz import MUTATIONS, Mutator, Record, good
from tests.support.generated_history import build_history, expected, read_models, stored
from tests.support.processes import IngestProcess, ProjectorProcess, ingest_on

BAD_RECORDS = int(os.environ.get("METERING_FUZZ_BAD_RECORDS", "10000"))
BULK_EVENTS = BAD_RECORDS
MAX_STALL_S = 5.0
"""The longest the pipeline may go without storing, rejecting or projecting anything
while records wait."""


@dataclass
class Stream:
    records: list[Record]
    good_events: list[TypedEvent]
    """Every good event in sending order (duplicates and conflicting copies included)."""
    mutations: Counter[str]


def stream(rng: random.Random, now: datetime) -> Stream:
    """Good records in order, bad ones placed at random (conflicts after their originals)."""
    history = build_history(rng, lambda low, high: high)
    events = history.arrival(rng)
    events += bulk_executions(rng, BULK_EVENTS, "fuzz-bulk")
    records: list[Record] = []
    first: dict[tuple[str, str], TypedEvent] = {}
    originals: list[int] = []
    for event in events:
        kept = first.setdefault((event.source, event.id), event)
        if kept is event:
            originals.append(len(records))
            records.append(good(event, rng))
        elif kept == event:
            records.append(good(event, rng, kind="duplicate"))
        else:  # the history's own conflicting copy: dead-lettered, the first one counts
            value = good(event, rng)
            records.append(
                Record(
                    value.value,
                    value.key,
                    value.headers,
                    "history_conflict",
                    frozenset({"conflict"}),
                )
            )
    mutator = Mutator(rng, now)
    placed: list[tuple[float, int, Record]] = [(i, 0, r) for i, r in enumerate(records)]
    for n in range(BAD_RECORDS):
        index = rng.choice(originals)
        bad = mutator.bad(events[index], index)
        low = index + 0.5 if bad.after is not None else -0.5
        placed.append((rng.uniform(low, len(records)), n + 1, bad))
    placed.sort(key=lambda p: (p[0], p[1]))
    return Stream([r for _, _, r in placed], events, Counter(mutator.kinds))


@pytest.fixture
def pipeline(
    servers: Endpoints, database_url: str, new_topic: str, tmp_path: Path
) -> Iterator[tuple[IngestProcess, ProjectorProcess]]:
    ingest = ingest_on(servers, database_url, new_topic, tmp_path)
    projector = ProjectorProcess(database_url, tmp_path, batch_size=2000)
    yield ingest, projector
    ingest.stop()
    projector.stop()


async def send(bootstrap: str, topic: str, records: list[Record]) -> dict[tuple[int, int], Record]:
    """Send in order; each record's (partition, offset) as the broker placed it."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=2_000_000
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, r.value, key=r.key, headers=r.headers) for r in records
        ]
        placed = [await f for f in futures]
    finally:
        await producer.stop()
    return {(m.partition, m.offset): r for m, r in zip(placed, records, strict=True)}


async def dead_letter_reasons(bootstrap: str, topic: str, expected: int) -> Counter[str]:
    """The reason header of each record on the dead-letter topic."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    reasons: Counter[str] = Counter()
    try:
        deadline = time.monotonic() + 60
        while sum(reasons.values()) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    reasons[dict(record.headers)["dlq_reason_code"].decode()] += 1
    finally:
        await consumer.stop()
    return reasons


@dataclass
class Progress:
    stored: int
    rejected: int
    projected: int


async def progress(db: asyncpg.Connection) -> Progress:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM events) AS stored,"
        " (SELECT count(*) FROM rejected_events) AS rejected,"
        " (SELECT coalesce(max(position), 0) FROM projection_checkpoints) AS projected"
    )
    assert row is not None
    return Progress(row["stored"], row["rejected"], row["projected"])


async def test_ten_thousand_bad_records_through_kafka_leave_every_good_event_counted_once(
    servers: Endpoints,
    new_topic: str,
    db: asyncpg.Connection,
    pipeline: tuple[IngestProcess, ProjectorProcess],
) -> None:
    ingest, projector = pipeline
    rng = random.Random(11)
    fuzz = stream(rng, datetime.now(UTC))
    good_events = stored(fuzz.good_events)
    bad = sum(1 for r in fuzz.records if r.reasons)
    assert bad >= BAD_RECORDS
    assert fuzz.mutations.keys() == {name for name, _ in MUTATIONS}, "a mutation never ran"
    ingest.start()
    projector.start()

    sent = await send(servers.kafka_bootstrap, new_topic, fuzz.records)
    last, last_change, longest = await progress(db), time.monotonic(), 0.0
    started = time.monotonic()
    while True:
        await asyncio.sleep(0.2)
        assert ingest.alive(), f"ingest exited: {ingest.log()[-3000:]}"
        assert projector.alive(), f"the projector exited: {projector.log()[-3000:]}"
        now, at = await progress(db), time.monotonic()
        if now != last:
            longest = max(longest, at - last_change)
            last, last_change = now, at
        done = now.stored == len(good_events) and now.rejected == bad
        if done and now.projected >= int(await db.fetchval("SELECT max(position) FROM events")):
            break
        assert at - last_change < 60, f"no progress for a minute: {now}, expected {bad} rejected"
    elapsed = time.monotonic() - started
    longest = max(longest, time.monotonic() - last_change)

    rejected = await db.fetch(
        "SELECT kafka_partition, kafka_offset, reason_code, reason FROM rejected_events"
    )
    found = {(r["kafka_partition"], r["kafka_offset"]): r for r in rejected}
    expected_bad = {place: r for place, r in sent.items() if r.reasons}
    assert found.keys() == expected_bad.keys()
    wrong = [
        (expected_bad[p].kind, sorted(expected_bad[p].reasons), r["reason_code"], r["reason"])
        for p, r in found.items()
        if r["reason_code"] not in expected_bad[p].reasons
    ]
    assert not wrong, "\n".join(map(str, wrong[:30]))
    assert all(r["reason"] for r in rejected)

    ids = await db.fetch("SELECT source, id, count(*) AS n FROM events GROUP BY source, id")
    assert {(r["source"], r["id"]) for r in ids} == {(e.source, e.id) for e in good_events}
    assert all(r["n"] == 1 for r in ids)
    assert await read_models(db) == expected(fuzz.good_events)
    assert await db.fetchval("SELECT count(*) FROM projector_quarantine") == 0
    metrics = ingest.metrics()
    dead = sum(v for k, v in metrics.items() if k.startswith("ingest_records_rejected_total{"))
    assert dead == bad
    dead_letters = await dead_letter_reasons(servers.kafka_bootstrap, f"{new_topic}.dlq", bad)
    assert dead_letters == Counter(r["reason_code"] for r in rejected)
    assert longest < MAX_STALL_S, f"the pipeline stood still for {longest:.1f} s"
    print(
        f"\n{len(fuzz.records)} records ({bad} bad, {len(good_events)} good events) in "
        f"{elapsed:.1f} s; longest without progress {longest:.2f} s; by mutation "
        f"{dict(sorted(fuzz.mutations.items()))}; by reason "
        f"{dict(sorted(Counter(r['reason_code'] for r in rejected).items()))}"
    )
