"""Notification latency: a threshold crossing projected -> on the notifications topic and
at a webhook, under steady load through the real ingest and projector processes.

BENCH_NOTIFY_ORGANIZATIONS (default 1,000) organizations each get a subscribed period
of BENCH_NOTIFY_PLAN_CREDITS (50) credits, then module executions of one credit each,
spread evenly at BENCH_NOTIFY_RATE (2,000/s) for BENCH_NOTIFY_SECONDS (30 s): each
organization crosses 75, 90 and 100 % along the way. BENCH_NOTIFY_WEBHOOKS (200) of
them have a webhook, served by a local receiver.

The latency of a notification runs from its `decided_at` (the clock in the projector's
batch that projects the crossing, before it commits: the CloudEvent's `time`) to the
time Kafka appended it to the notifications topic (LogAppendTime: visible to any
consumer), and to its arrival at the webhook. Also counted: every crossing notified
exactly once (distinct ids = records = organizations x 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from rich.console import Console

from bench.freshness import produce_steadily
from bench.ingest import fresh_database
from deploy.stack.local import LocalStack
from services.emitter import Emitter
from services.infra import database
from services.infra.topics import ensure_topics
from services.projector.webhooks import add_endpoint
from tests.support.processes import ProjectorProcess, ingest_on, running
from tests.support.webhooks import Receiver, receiving

ORGANIZATIONS = int(os.environ.get("BENCH_NOTIFY_ORGANIZATIONS", "1000"))
PLAN_CREDITS = int(os.environ.get("BENCH_NOTIFY_PLAN_CREDITS", "50"))
RATE = int(os.environ.get("BENCH_NOTIFY_RATE", "2000"))
SECONDS = float(os.environ.get("BENCH_NOTIFY_SECONDS", "30"))
WEBHOOKS = int(os.environ.get("BENCH_NOTIFY_WEBHOOKS", "200"))
THRESHOLDS = 3
console = Console()


def usage(n: int, stamp: str) -> tuple[bytes, bytes]:
    """Module execution `n`: one credit to organization n mod ORGANIZATIONS, at `stamp`."""
    org = f"org-{n % ORGANIZATIONS}"
    data = (
        f'{{"organization_id":"{org}","scenario_id":"scn-{n % 5}","run_id":"run-{n // 20}",'
        f'"module_id":"{n % 7}","app":"openai","action":"createCompletion","operations":1,'
        f'"credits":"1","started_at":"{stamp}","finished_at":"{stamp}","status":"success"}}'
    )
    value = (
        f'{{"specversion":"1.0","id":"u-{n}","source":"bench",'
        f'"type":"com.metering.module_execution.completed.v2","subject":"{org}",'
        f'"time":"{stamp}","data":{data}}}'
    )
    return org.encode(), value.encode()


async def prepare(bootstrap: str, topic: str, url: str, receiver: Receiver) -> None:
    """The organizations' periods (projected before the load starts) and webhooks."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with Emitter(bootstrap, topic, "bench") as emitter:
        for n in range(ORGANIZATIONS):
            await emitter.emit(
                "com.metering.subscription.period_started.v1",
                {
                    "organization_id": f"org-{n}",
                    "plan": "core",
                    "plan_credits": str(PLAN_CREDITS),
                    "period_start": now - timedelta(days=1),
                    "period_end": now + timedelta(days=29),
                },
                event_id=f"period-{n}",
                time=now - timedelta(days=1),
            )
    db = await database.connect(url)
    try:
        for n in range(WEBHOOKS):
            await add_endpoint(db, f"org-{n}", receiver.url)
        deadline = time.monotonic() + 120
        while await db.fetchval("SELECT count(*) FROM billing_periods") < ORGANIZATIONS:
            if time.monotonic() > deadline:
                raise RuntimeError("the periods were not projected within 2 minutes")
            await asyncio.sleep(0.5)
    finally:
        await db.close()


async def collect(bootstrap: str, topic: str, expected: int, stop: asyncio.Event) -> list[Any]:
    """Every notification record, until `expected` came or `stop` is set and 30 s passed."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = None
        while len(records) < expected:
            if stop.is_set():
                deadline = deadline or time.monotonic() + 30
                if time.monotonic() > deadline:
                    break
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records += batch
    finally:
        await consumer.stop()
    return records


async def load(bootstrap: str, topic: str, notifications: str) -> tuple[int, list[Any]]:
    stop = asyncio.Event()
    expected = ORGANIZATIONS * THRESHOLDS
    collecting = asyncio.create_task(collect(bootstrap, notifications, expected, stop))
    sent = await produce_steadily(bootstrap, topic, usage, RATE, SECONDS)
    stop.set()
    return sent, await collecting


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def decided(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    url = fresh_database(endpoints.database_url)
    topic = f"bench.notify.{uuid.uuid4().hex[:8]}"
    notifications = f"{topic}.notifications"
    asyncio.run(ensure_topics(endpoints.kafka_bootstrap, [topic, notifications]))
    logs = Path(tempfile.mkdtemp())
    ingest = ingest_on(endpoints, url, topic, logs)
    projector = ProjectorProcess(
        url, logs, 5000, endpoints.kafka_bootstrap, topic, notifications_topic=notifications
    )
    with receiving([]) as receiver, running(ingest, projector):
        asyncio.run(prepare(endpoints.kafka_bootstrap, topic, url, receiver))
        console.print(
            f"{ORGANIZATIONS:,} organizations of {PLAN_CREDITS} credits, {RATE:,} events/s"
            f" for {SECONDS:.0f} s, {WEBHOOKS} webhooks ..."
        )
        sent, records = asyncio.run(load(endpoints.kafka_bootstrap, topic, notifications))
        deadline = time.monotonic() + 60  # the last webhook deliveries
        while len(receiver.requests) < WEBHOOKS * THRESHOLDS and time.monotonic() < deadline:
            time.sleep(0.2)
        arrivals = [(at, json.loads(body)["time"]) for at, _, body, _ in receiver.requests]
        retries = projector.metrics().get('projector_webhook_attempts_total{outcome="retry"}', 0)
    return {**report(sent, records, arrivals), "webhook_retries": retries}


def report(sent: int, records: list[Any], arrivals: list[tuple[float, str]]) -> dict[str, float]:
    events = [json.loads(r.value) for r in records]
    to_topic = [
        r.timestamp / 1000 - decided(e["time"]) for r, e in zip(records, events, strict=True)
    ]
    to_webhook = [arrived - decided(at) for arrived, at in arrivals]
    ids = {e["id"] for e in events}
    expected = ORGANIZATIONS * THRESHOLDS
    figures = {
        "notifications": len(records),
        "expected": expected,
        "distinct": len(ids),
        "p50_to_topic_s": round(percentile(to_topic, 0.5), 4),
        "p99_to_topic_s": round(percentile(to_topic, 0.99), 4),
        "max_to_topic_s": round(max(to_topic, default=float("nan")), 4),
        "webhook_deliveries": len(arrivals),
        "p50_to_webhook_s": round(percentile(to_webhook, 0.5), 4),
        "p99_to_webhook_s": round(percentile(to_webhook, 0.99), 4),
        "events": sent,
        "rate_per_s": RATE,
        "organizations": ORGANIZATIONS,
    }
    console.print(
        f"  {len(records):,} notifications ({len(ids):,} distinct, {expected:,} crossings);"
        f" projected -> topic p50 {figures['p50_to_topic_s']} s, p99"
        f" [bold]{figures['p99_to_topic_s']} s[/bold], max {figures['max_to_topic_s']} s;"
        f" -> webhook ({len(arrivals):,}) p50 {figures['p50_to_webhook_s']} s,"
        f" p99 [bold]{figures['p99_to_webhook_s']} s[/bold]"
    )
    return figures
