"""Live freshness: event time -> visible in the read models, at a steady rate through ingest.

A producer sends module executions stamped with their send time at a steady
rate (BENCH_FRESHNESS_RATE, default 10k/s) for BENCH_FRESHNESS_SECONDS, to the
real ingest and projector processes. The projector's own histograms give two
distributions: from the event's time (projector_freshness_seconds: what a user
sees, Kafka and ingest included) and from its append to the store
(projector_store_to_visible_seconds: the projector alone). p50 and p99 are read
off their buckets by linear interpolation, as Prometheus' histogram_quantile does.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from rich.console import Console

from bench.ingest import HEADERS, fresh_database, record_value
from deploy.stack.local import LocalStack
from services.infra.topics import ensure_topics
from tests.support.processes import IngestProcess, ProjectorProcess

RATE = int(os.environ.get("BENCH_FRESHNESS_RATE", "10000"))
SECONDS = int(os.environ.get("BENCH_FRESHNESS_SECONDS", "30"))
INGEST_BATCH = int(os.environ.get("BENCH_FRESHNESS_INGEST_BATCH", "5000"))
console = Console()


async def produce_steadily(bootstrap: str, topic: str) -> int:
    """Send RATE events a second, in 20 ms slices, each stamped with its send time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    sent = 0
    started = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - started) < SECONDS:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            pending = []
            while sent < int(elapsed * RATE):
                key, payload = record_value(sent, stamp)
                pending.append(await producer.send(topic, payload, key=key, headers=HEADERS))
                sent += 1
            await asyncio.gather(*pending)
            await asyncio.sleep(0.02)
    finally:
        await producer.stop()
    return sent


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """histogram_quantile over cumulative (upper bound, count) buckets."""
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * (
                (rank - lower_count) / span if span else 0
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def freshness_buckets(
    metrics: dict[str, float], histogram: str = "projector_freshness_seconds"
) -> list[tuple[float, float]]:
    prefix = f'{histogram}_bucket{{le="'
    found = []
    for name, count in metrics.items():
        if name.startswith(prefix):
            bound = name[len(prefix) :].split('"', 1)[0]
            found.append((float(bound), count))
    return sorted(found)


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    database = fresh_database(endpoints.database_url)
    topic = f"bench.freshness.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(endpoints.kafka_bootstrap, [topic]))
    logs = Path(tempfile.mkdtemp())
    ingest = IngestProcess(
        database,
        endpoints.kafka_bootstrap,
        topic,
        f"{topic}.dlq",
        f"bench-{uuid.uuid4().hex[:8]}",
        logs,
        max_batch=INGEST_BATCH,
    )
    projector = ProjectorProcess(database, logs, batch_size=5000)
    ingest.start()
    projector.start()
    try:
        console.print(f"sending {RATE:,} events/s for {SECONDS} s ...")
        sent = asyncio.run(produce_steadily(endpoints.kafka_bootstrap, topic))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            buckets = freshness_buckets(projector.metrics())
            if buckets and buckets[-1][1] >= sent:
                break
            time.sleep(0.5)
        buckets = freshness_buckets(projector.metrics())
        from_append = freshness_buckets(projector.metrics(), "projector_store_to_visible_seconds")
    finally:
        projector.stop()
        ingest.stop()
    seen = buckets[-1][1] if buckets else 0
    p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
    append_p50, append_p99 = quantile(0.5, from_append), quantile(0.99, from_append)
    console.print(
        f"  {sent:,} sent, {seen:,.0f} visible; from event time p50 [bold]{p50:.3f} s[/bold], "
        f"p99 [bold]{p99:.3f} s[/bold]; from append p50 {append_p50:.3f} s, "
        f"p99 [bold]{append_p99:.3f} s[/bold]"
    )
    return {
        "p50_s": round(p50, 3),
        "p99_s": round(p99, 3),
        "p50_from_append_s": round(append_p50, 3),
        "p99_from_append_s": round(append_p99, 3),
        "rate_per_s": RATE,
        "events": sent,
        "visible": seen,
    }
