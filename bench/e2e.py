"""End to end: a backlog in Kafka -> ingest -> projector -> the API's totals equal what was sent.

The backlog is BENCH_E2E_EVENTS module executions (default 1M) over 1,000
organizations, in both CloudEvents bindings. Nine records in ten are structured
mode and are produced with kcat, the tool a producer team would script with.
kcat sets headers for a whole run, not per record, so the binary-mode tenth
(with its `ce_*` headers) is produced with aiokafka.

Then ingest, the projector and the API start on an empty store. The bench
reports events/s from the start of the services to the last event visible in
the read models (the projector's count reaching the backlog), and checks that
every organization's total over the API equals the sum it was sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
from rich.console import Console

from bench.ingest import Record, fresh_database, record_value, send_records
from deploy.stack.local import LocalStack
from services.infra.topics import ensure_topics
from services.query_api.auth import sign
from tests.support.processes import ApiProcess, IngestProcess, ProjectorProcess

EVENTS = int(os.environ.get("BENCH_E2E_EVENTS", "1000000"))
BINARY_EVERY = 10
"""Every tenth record is in binary mode."""
SECRET = "bench-secret-long-enough-for-hs256-signing!"  # noqa: S105 (a throwaway local key)
console = Console()


def produce_structured_with_kcat(bootstrap: str, topic: str) -> int:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        raise SystemExit("kcat is not installed: run deploy/install-system-deps.sh")
    lines = Path(tempfile.mkdtemp()) / "structured.tsv"
    sent = 0
    with lines.open("wb") as out:
        for i in range(EVENTS):
            if i % BINARY_EVERY:
                key, value = record_value(i)
                out.write(key + b"\t" + value + b"\n")
                sent += 1
    subprocess.run(
        [
            *(kcat, "-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-l", str(lines)),
            *("-H", "content-type=application/cloudevents+json", "-X", "linger.ms=50"),
        ],
        check=True,
    )
    return sent


def binary(indexes: Iterable[int]) -> Iterator[Record]:
    """The same events in binary mode: attributes in `ce_*` headers, the data as the value."""
    for i in indexes:
        key, value = record_value(i)
        envelope = json.loads(value)
        headers = [("content-type", b"application/json")] + [
            (f"ce_{name}", str(envelope[name]).encode())
            for name in ("specversion", "id", "source", "type", "subject", "time")
        ]
        yield key, json.dumps(envelope["data"]).encode(), headers


def sent_totals() -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for i in range(EVENTS):
        data = json.loads(record_value(i)[1])["data"]
        totals[data["organization_id"]] += Decimal(data["credits"])
    return totals


def api_total(client: httpx.Client, organization: str) -> Decimal:
    response = client.get(
        f"/v1/organizations/{organization}/billing-periods?limit=100",
        headers={"Authorization": f"Bearer {sign(organization, SECRET)}"},
    )
    response.raise_for_status()
    periods = response.json()["periods"]
    return sum((Decimal(p["credits_used"]) for p in periods), Decimal(0))


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    database = fresh_database(endpoints.database_url)
    topic = f"bench.e2e.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(endpoints.kafka_bootstrap, [topic]))
    console.print(f"producing {EVENTS:,} events to {topic} (kcat, structured; binary 1 in 10) ...")
    started = time.perf_counter()
    structured = produce_structured_with_kcat(endpoints.kafka_bootstrap, topic)
    binary_records = binary(range(0, EVENTS, BINARY_EVERY))
    sent_binary = asyncio.run(send_records(endpoints.kafka_bootstrap, topic, binary_records))
    console.print(
        f"  {structured:,} structured and {sent_binary:,} binary records in "
        f"{time.perf_counter() - started:.0f} s"
    )
    expected = sent_totals()
    logs = Path(tempfile.mkdtemp())
    group = f"bench-{uuid.uuid4().hex[:8]}"
    ingest = IngestProcess(
        database, endpoints.kafka_bootstrap, topic, f"{topic}.dlq", group, logs, max_batch=5000
    )
    projector = ProjectorProcess(database, logs, batch_size=5000)
    api = ApiProcess(database, logs, SECRET)
    metric = 'projector_events_total{projection="usage"}'
    started = time.perf_counter()
    ingest.start()
    projector.start()
    api.start()
    try:
        while projector.metrics().get(metric, 0) < EVENTS:
            for service in (ingest, projector):
                if not service.alive():
                    raise RuntimeError(f"a service exited: {service.log()[-2000:]}")
            time.sleep(0.25)
        visible_s = time.perf_counter() - started
        with httpx.Client(base_url=api.base_url) as client:
            wrong = {
                org: (total, found)
                for org, total in expected.items()
                if (found := api_total(client, org)) != total
            }
    finally:
        api.stop()
        projector.stop()
        ingest.stop()
    if wrong:
        raise RuntimeError(f"{len(wrong)} organizations' totals differ: {list(wrong.items())[:3]}")
    console.print(
        f"  [bold]{EVENTS / visible_s:,.0f} events/s[/bold] end to end: the last of {EVENTS:,} "
        f"visible after {visible_s:.1f} s; all {len(expected):,} organizations' API totals "
        f"equal what was sent"
    )
    return {
        "events": EVENTS,
        "events_per_s": round(EVENTS / visible_s),
        "last_visible_s": round(visible_s, 2),
        "organizations_checked": len(expected),
    }
