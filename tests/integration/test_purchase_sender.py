"""The auto-purchase sender survives any error and never stops for good (#11 §3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from deploy.stack.local import Endpoints
from services.projector import metrics, purchases
from services.projector.purchases import PurchaseSender
from tests.integration.test_ingest_service import read_topic
from tests.integration.test_webhook_deliverer import records_on, side_by_side
from tests.support.waiting import eventually

OUTBOX = (
    "INSERT INTO auto_purchase_outbox (event_id, organization_id, period_start, credits,"
    " purchased_at) VALUES ($1, 'org-1', $2, $3, $2)"
)


async def test_a_failing_send_and_an_invalid_row_do_not_stop_the_sender(
    servers: Endpoints,
    database_url: str,
    db: asyncpg.Connection,
    new_topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    when = datetime(2026, 11, 20, tzinfo=UTC)
    await db.execute(OUTBOX, "auto-purchase:org-1:a:1", when, Decimal(500))
    await db.execute(  # purchased before the contract's years: not a valid event
        OUTBOX, "auto-purchase:org-1:b:1", datetime(1999, 1, 1, tzinfo=UTC), Decimal(500)
    )
    real, calls = purchases._purchase, []

    def fails_once(row: asyncpg.Record) -> object:
        calls.append(row["event_id"])
        if len(calls) == 1:
            raise RuntimeError("a bug we did not foresee")
        return real(row)

    monkeypatch.setattr(purchases, "_purchase", fails_once)
    errors_before = metrics.PURCHASE_SEND_ERRORS._value.get()
    sender = PurchaseSender(database_url, servers.kafka_bootstrap, new_topic)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, interval_s=0.1))
    try:
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) = 1 FROM auto_purchase_outbox WHERE sent_at IS NOT NULL"
            ),
            timeout_s=30,
        )
        assert not task.done(), "the sender stopped"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    [sent] = await read_topic(servers.kafka_bootstrap, new_topic, 1)
    assert b"auto-purchase:org-1:a:1" in sent.value  # type: ignore[attr-defined]
    unsent = await db.fetch("SELECT event_id FROM auto_purchase_outbox WHERE sent_at IS NULL")
    assert [r["event_id"] for r in unsent] == ["auto-purchase:org-1:b:1"]
    assert metrics.PURCHASE_SEND_ERRORS._value.get() - errors_before >= 2  # the bug, the bad row


async def test_senders_side_by_side_send_each_purchase_once(
    servers: Endpoints, database_url: str, db: asyncpg.Connection, new_topic: str
) -> None:
    when = datetime(2026, 11, 20, tzinfo=UTC)
    for n in range(200):
        await db.execute(OUTBOX, f"auto-purchase:org-1:a:{n}", when, Decimal(500))
    await side_by_side(
        [PurchaseSender(database_url, servers.kafka_bootstrap, new_topic) for _ in range(3)],
        db,
        "SELECT count(*) = 0 FROM auto_purchase_outbox WHERE sent_at IS NULL",
    )

    assert len(await read_topic(servers.kafka_bootstrap, new_topic, 200)) == 200
    assert await records_on(servers.kafka_bootstrap, new_topic) == 200  # none twice
