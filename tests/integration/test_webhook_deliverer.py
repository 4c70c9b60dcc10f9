"""The webhook deliverer and the notification sender: each delivery attempted once at a
time however many run, a removed webhook's deliveries failed at once, each notification
sent once by senders side by side."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.stack.local import Endpoints
from services.projector.notifications import NotificationSender
from services.projector.outbox import OutboxSender
from services.projector.settings import ProjectorSettings
from services.projector.webhooks import WebhookDeliverer, add_endpoint, remove_endpoint
from tests.integration.test_ingest_service import read_topic
from tests.support.waiting import eventually
from tests.support.webhooks import receiving

NOTIFICATION = """
INSERT INTO notification_outbox (event_id, organization_id, type, data, decided_at)
VALUES ($1, 'org-1', 'com.metering.credits.threshold_crossed.v1', $2, $3)
"""

DELIVERY = """
INSERT INTO webhook_deliveries (event_id, endpoint_id, organization_id, created_at,
                                next_attempt_at)
VALUES ($1, $2, 'org-1', $3, $3)
"""


def data(n: int) -> str:
    return json.dumps(
        {
            "organization_id": "org-1",
            "period_start": "2026-12-01T00:00:00Z",
            "period_end": "2027-01-01T00:00:00Z",
            "scope": "organization",
            "threshold_percent": 75,
            "used_credits": "75",
            "total_credits": "100",
            "crossing": n,
            "crossed_at": "2026-12-02T10:00:00Z",
        }
    )


async def side_by_side(senders: Sequence[OutboxSender], db: asyncpg.Connection, done: str) -> None:
    """Run the senders together until the query `done` says true (30 s at most)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop, interval_s=0.05)) for s in senders]
    try:
        await eventually(lambda: db.fetchval(done), timeout_s=30)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def notify(db: asyncpg.Connection, count: int, endpoints: list[str]) -> list[str]:
    now = datetime.now(UTC)
    ids = [f"credits:org-1:20261201T000000Z:75:{n}" for n in range(1, count + 1)]
    for n, event_id in enumerate(ids, start=1):
        await db.execute(NOTIFICATION, event_id, data(n), now)
        for endpoint in endpoints:
            await db.execute(DELIVERY, event_id, endpoint, now)
    return ids


async def test_two_deliverers_side_by_side_attempt_each_delivery_once(
    db: asyncpg.Connection, database_url: str
) -> None:
    with receiving([]) as receiver:
        endpoint, _ = await add_endpoint(db, "org-1", receiver.url)
        ids = await notify(db, 40, [endpoint])
        await side_by_side(
            [WebhookDeliverer(database_url, ProjectorSettings()) for _ in range(2)],
            db,
            "SELECT count(*) = 40 FROM webhook_deliveries WHERE status = 'delivered'",
        )

    received = [headers["webhook-id"] for _, headers, _, _ in receiver.requests]
    assert sorted(received) == sorted(ids)  # each once, none twice
    attempts = await db.fetchval("SELECT count(*) FROM webhook_attempts")
    assert attempts == 40


async def test_a_removed_webhooks_deliveries_fail_at_once_with_the_reason(
    db: asyncpg.Connection, database_url: str
) -> None:
    with receiving([]) as receiver:
        kept, _ = await add_endpoint(db, "org-1", receiver.url)
        removed, _ = await add_endpoint(db, "org-1", receiver.url + "/old")
        await remove_endpoint(db, removed)
        await notify(db, 1, [kept, removed])
        deliverer = WebhookDeliverer(database_url, ProjectorSettings())
        try:
            assert await deliverer.send_pending() == 2
        finally:
            await deliverer.close()

    rows = await db.fetch(
        "SELECT d.endpoint_id, d.status, a.status_code, a.error FROM webhook_deliveries d"
        " JOIN webhook_attempts a USING (event_id, endpoint_id)"
    )
    assert {r["endpoint_id"]: (r["status"], r["status_code"], r["error"]) for r in rows} == {
        kept: ("delivered", 200, None),
        removed: ("failed", None, "endpoint removed"),
    }
    assert len(receiver.requests) == 1


async def test_senders_side_by_side_put_each_notification_on_the_topic_once(
    servers: Endpoints, db: asyncpg.Connection, database_url: str, new_topic: str
) -> None:
    ids = await notify(db, 300, [])
    await side_by_side(
        [NotificationSender(database_url, servers.kafka_bootstrap, new_topic) for _ in range(3)],
        db,
        "SELECT count(*) = 0 FROM notification_outbox WHERE sent_at IS NULL",
    )

    records = await read_topic(servers.kafka_bootstrap, new_topic, 300)
    sent = [json.loads(r.value)["id"] for r in records]  # type: ignore[attr-defined]
    assert sorted(sent) == sorted(ids)
    assert await records_on(servers.kafka_bootstrap, new_topic) == 300  # none twice


async def records_on(bootstrap: str, topic: str) -> int:
    """How many records the topic holds: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()
