"""Ingest throughput: 1M events already in Kafka -> event store, by the real service.

With BENCH_INGEST_PROCESSES (default 2), the same backlog is ingested again by
that many processes in one group, each on its own partitions.

Also measures the two halves of the hot path on their own, in this process:
decoding (bytes -> validated event) and appending (COPY + insert + commit),
so a shortfall can be put where it belongs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psycopg
from aiokafka import AIOKafkaProducer
from rich.console import Console

from deploy.stack.local import LocalStack
from deploy.stack.processes import free_port, port_answers
from services.infra.migrations.runner import migrate
from services.infra.topics import ensure_topics
from services.ingest.decoding import Limits, decode
from services.ingest.recorder import append, prepare_connection
from services.ingest.records import NewEvent, RawRecord, RecordOrigin

EVENTS = int(os.environ.get("BENCH_INGEST_EVENTS", "1000000"))
PROCESSES = int(os.environ.get("BENCH_INGEST_PROCESSES", "2"))
"""After one process, the same backlog again with this many (1: skip)."""
ORGANIZATIONS = 1000
HEADERS = [("content-type", b"application/cloudevents+json")]
console = Console()


def record_value(i: int, stamp: str | None = None) -> tuple[bytes, bytes]:
    """A structured-mode module execution, rendered without pydantic (to produce fast)."""
    org = f"org-{i % ORGANIZATIONS}"
    if stamp is None:
        second = i % 86400
        stamp = f"2026-11-20T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
    credits = f"{i % 10}.{i % 999983:06d}"
    data = (
        f'{{"organization_id":"{org}","scenario_id":"scn-{i % 37}","run_id":"run-{i // 10}",'
        f'"module_id":"{i % 7}","app":"openai","action":"createCompletion","operations":1,'
        f'"credits":"{credits}","started_at":"{stamp}","finished_at":"{stamp}","status":"success"}}'
    )
    value = (
        f'{{"specversion":"1.0","id":"e-{i}","source":"bench",'
        f'"type":"com.metering.module_execution.completed.v2","subject":"{org}",'
        f'"time":"{stamp}","data":{data}}}'
    )
    return org.encode(), value.encode()


Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""Key, value and headers of one record to produce."""


async def send_records(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    """Produce `records` in order, 20,000 in flight at most; returns how many were sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1 << 20, acks=1
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for key, value, headers in records:
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def structured(indexes: Iterable[int]) -> Iterator[Record]:
    """The bench's structured-mode records for these event numbers."""
    for i in indexes:
        yield *record_value(i), HEADERS


async def produce(bootstrap: str, topic: str) -> float:
    started = time.perf_counter()
    await send_records(bootstrap, topic, structured(range(EVENTS)))
    return EVENTS / (time.perf_counter() - started)


CREATED: list[str] = []
"""Databases the benches of this process made; `python -m bench` drops them after each
bench (a bench that means one to be reused takes it out of the list)."""


def fresh_database(url: str) -> str:
    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = url.rsplit("/", 1)[0] + f"/{name}"
    CREATED.append(database)
    migrate(database)
    return database


def drop_databases(databases: Iterable[str]) -> int:
    """Drop these databases of one server (their connections too); how many there were."""
    urls = list(databases)
    if not urls:
        return 0
    server = urls[0].rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for url in urls:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    return len(urls)


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def accepted(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ingest_events_accepted_total{")
    )


def run_service(database: str, bootstrap: str, topic: str, processes: int = 1) -> dict[str, float]:
    """`processes` ingest processes in one consumer group, each on its own partitions."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    ports = [free_port() for _ in range(processes)]
    logs = Path(tempfile.mkdtemp())
    running: list[subprocess.Popen[bytes]] = []
    for n, port in enumerate(ports):
        env = {
            **os.environ,
            "METERING_DATABASE_URL": database,
            "METERING_KAFKA_BOOTSTRAP": bootstrap,
            "METERING_EVENTS_TOPIC": topic,
            "METERING_DLQ_TOPIC": f"{topic}.dlq",
            "METERING_INGEST_GROUP_ID": group,
            "METERING_INGEST_METRICS_PORT": str(port),
        }
        with (logs / f"ingest-{n}.log").open("wb") as out:
            running.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.cli", "ingest", "run"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        while not all(port_answers(port) for port in ports):
            time.sleep(0.05)
        started = time.perf_counter()
        rss_at_tenth = rss_at_half = 0.0
        done = 0.0
        while done < EVENTS:
            time.sleep(0.25)
            done = sum(accepted(port) for port in ports)
            if not rss_at_tenth and done >= EVENTS / 10:
                rss_at_tenth = max(rss_mb(p.pid, "VmRSS") for p in running)
            if not rss_at_half and done >= EVENTS / 2:
                rss_at_half = max(rss_mb(p.pid, "VmRSS") for p in running)
            for n, process in enumerate(running):
                if process.poll() is not None:
                    log = (logs / f"ingest-{n}.log").read_text()
                    raise RuntimeError(f"ingest exited: {log[-2000:]}")
        elapsed = time.perf_counter() - started
        return {
            "events_per_s": round(EVENTS / elapsed),
            "seconds": round(elapsed, 2),
            "peak_rss_mb": round(max(rss_mb(p.pid, "VmHWM") for p in running), 1),
            "rss_mb_at_10_percent": round(rss_at_tenth, 1),
            "rss_mb_at_50_percent": round(rss_at_half, 1),
            "rss_mb_at_end": round(max(rss_mb(p.pid, "VmRSS") for p in running), 1),
        }
    finally:
        for process in running:
            process.terminate()
        for process in running:
            process.wait(30)


def decode_rate(n: int = 100_000) -> tuple[float, list[NewEvent]]:
    records = [
        RawRecord(RecordOrigin("t", 0, i), *record_value(i), tuple(HEADERS)) for i in range(n)
    ]
    now = datetime.now(UTC)
    started = time.perf_counter()
    events = [decode(r, now, Limits()) for r in records]
    rate = n / (time.perf_counter() - started)
    return rate, [e for e in events if isinstance(e, NewEvent)]


async def append_rate(database: str, events: list[NewEvent], batch: int = 5000) -> float:
    conn = await asyncpg.connect(database)
    await prepare_connection(conn)
    await conn.execute("TRUNCATE events, event_keys")
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        await append(conn, events[i : i + batch], [])
    rate = len(events) / (time.perf_counter() - started)
    await conn.execute("TRUNCATE events, event_keys")
    await conn.close()
    return rate


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    database = fresh_database(endpoints.database_url)
    topic = f"bench.ingest.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(endpoints.kafka_bootstrap, [topic]))
    console.print(f"producing {EVENTS:,} events to {topic} ...")
    produce_rate = asyncio.run(produce(endpoints.kafka_bootstrap, topic))
    console.print(f"  produced at {produce_rate:,.0f} events/s")
    decode_per_s, decoded = decode_rate()
    append_per_s = asyncio.run(append_rate(database, decoded))
    console.print(f"  decode alone: {decode_per_s:,.0f} events/s on one core")
    console.print(
        f"  append alone (COPY + insert + commit, 5000/batch): {append_per_s:,.0f} events/s"
    )
    console.print("ingesting with one `metering ingest run` ...")
    figures = run_service(database, endpoints.kafka_bootstrap, topic)
    console.print(
        f"  [bold]{figures['events_per_s']:,} events/s[/bold] "
        f"({EVENTS:,} in {figures['seconds']} s), "
        f"peak RSS {figures['peak_rss_mb']} MB (RSS {figures['rss_mb_at_10_percent']} MB at 10 %, "
        f"{figures['rss_mb_at_50_percent']} MB at 50 %, {figures['rss_mb_at_end']} MB at the end)"
    )
    two: dict[str, float] = {}
    if PROCESSES > 1:
        console.print(f"ingesting the same backlog again with {PROCESSES} processes ...")
        two = run_service(
            fresh_database(endpoints.database_url), endpoints.kafka_bootstrap, topic, PROCESSES
        )
        console.print(
            f"  [bold]{two['events_per_s']:,} events/s[/bold] with {PROCESSES} processes, "
            f"peak RSS {two['peak_rss_mb']} MB per process"
        )
    return {
        **figures,
        **{f"{key}_{PROCESSES}_processes": value for key, value in two.items()},
        "events": EVENTS,
        "decode_events_per_s": round(decode_per_s),
        "append_events_per_s": round(append_per_s),
        "produce_events_per_s": round(produce_rate),
    }
