"""Live freshness: event time -> visible in the read models, at a steady rate through ingest.

A producer sends module executions stamped with their send time at a steady
rate (BENCH_FRESHNESS_RATE, default 10k/s) for BENCH_FRESHNESS_SECONDS, to the
real ingest and projector processes. The projector's own histograms give two
distributions: from the event's time (projector_freshness_seconds: what a user
sees, Kafka and ingest included) and from its append to the store
(projector_store_to_visible_seconds: the projector alone). p50 and p99 are read
off their buckets by linear interpolation, as Prometheus' histogram_quantile does,
summed over every projector process and shard. BENCH_FRESHNESS_INGEST_PROCESSES
(default 2) ingest processes share the topic's partitions; BENCH_FRESHNESS_PROJECTORS
(default 2) projector processes run as many shards.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from rich.console import Console

from bench.ingest import HEADERS, fresh_database, record_value
from deploy.stack.local import Endpoints, LocalStack
from services.infra.topics import ensure_topics
from tests.support.processes import IngestProcess, ProjectorProcess

RATE = int(os.environ.get("BENCH_FRESHNESS_RATE", "10000"))
SECONDS = int(os.environ.get("BENCH_FRESHNESS_SECONDS", "30"))
INGEST_BATCH = int(os.environ.get("BENCH_FRESHNESS_INGEST_BATCH", "5000"))
INGESTS = int(os.environ.get("BENCH_FRESHNESS_INGEST_PROCESSES", "2"))
PROJECTORS = int(os.environ.get("BENCH_FRESHNESS_PROJECTORS", "2"))
"""Projector processes, and shards: one each."""
console = Console()


async def send_slice(
    producer: AIOKafkaProducer, topic: str, slice_: dict[int, list[tuple[bytes, bytes]]]
) -> None:
    """Send one slice's records as few batches per partition as fit, and wait for them."""
    pending = []
    for partition, records in slice_.items():
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None, headers=HEADERS) is None:
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=HEADERS)
        if batch.record_count():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*pending)


async def produce_steadily(
    bootstrap: str,
    topic: str,
    record: Callable[[int, str], tuple[bytes, bytes]] = record_value,
    rate: int = RATE,
    seconds: float = SECONDS,
) -> int:
    """Send `rate` events (`record(n, send time)`) a second for `seconds`, in 20 ms
    slices, each stamped with its send time.

    Records go in batches per partition (aiokafka's create_batch): one `send` per
    record cost the producer more CPU than the pipeline it feeds.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    partitions = sorted(await producer.partitions_for(topic))
    sent = 0
    started = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - started) < seconds:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            slice_: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in partitions}
            while sent < int(elapsed * rate):
                key, payload = record(sent, stamp)
                slice_[partitions[zlib.crc32(key) % len(partitions)]].append((key, payload))
                sent += 1
            await send_slice(producer, topic, slice_)
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


BUCKET = re.compile(r"^(\w+)_bucket\{(.*)\}$")
LE = re.compile(r'le="([^"]+)"')


def freshness_buckets(
    processes: list[ProjectorProcess], histogram: str = "projector_freshness_seconds"
) -> list[tuple[float, float]]:
    """The histogram's cumulative buckets, summed over every process and shard."""
    summed: dict[float, float] = {}
    for process in processes:
        for name, count in process.metrics().items():
            found = BUCKET.match(name)
            if found and found[1] == histogram and (le := LE.search(found[2])):
                bound = float(le[1])
                summed[bound] = summed.get(bound, 0.0) + count
    return sorted(summed.items())


def start_pipeline(
    endpoints: Endpoints, database: str, topic: str
) -> tuple[list[IngestProcess], list[ProjectorProcess]]:
    """INGESTS ingest processes in one group and PROJECTORS projectors on as many shards."""
    logs = Path(tempfile.mkdtemp())
    group = f"bench-{uuid.uuid4().hex[:8]}"
    ingests = [
        IngestProcess(
            database,
            endpoints.kafka_bootstrap,
            topic,
            f"{topic}.dlq",
            group,
            logs / f"ingest-{n}",
            max_batch=INGEST_BATCH,
            instance_id=f"bench-ingest-{n}",
        )
        for n in range(INGESTS)
    ]
    projectors = [
        ProjectorProcess(database, logs / f"projector-{n}", batch_size=5000, shards=PROJECTORS)
        for n in range(PROJECTORS)
    ]
    for process in (*ingests, *projectors):
        process.log_dir.mkdir(parents=True, exist_ok=True)
        process.start()
    return ingests, projectors


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    database = fresh_database(endpoints.database_url)
    topic = f"bench.freshness.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(endpoints.kafka_bootstrap, [topic]))
    ingests, projectors = start_pipeline(endpoints, database, topic)
    try:
        console.print(
            f"sending {RATE:,} events/s for {SECONDS} s to {INGESTS} ingest and "
            f"{PROJECTORS} projector process(es) ..."
        )
        sent = asyncio.run(produce_steadily(endpoints.kafka_bootstrap, topic))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            buckets = freshness_buckets(projectors)
            if buckets and buckets[-1][1] >= sent:
                break
            time.sleep(0.5)
        buckets = freshness_buckets(projectors)
        from_append = freshness_buckets(projectors, "projector_store_to_visible_seconds")
    finally:
        for process in (*projectors, *ingests):
            process.stop()
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
        "ingest_processes": INGESTS,
        "projector_processes": PROJECTORS,
    }
