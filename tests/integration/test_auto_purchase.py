"""Auto-purchase through the whole pipeline: once per crossing, even across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from deploy.stack.local import Endpoints
from schemas import TypedEvent
from services.emitter import Emitter, build_event
from services.projector.projection import prepare_connection, project_batch
from services.projector.shards import claim
from tests.support.events import auto_purchase_configured, module_execution, period_started
from tests.support.processes import IngestProcess, ProjectorProcess, ingest_on, running
from tests.support.store import store
from tests.support.waiting import eventually

AUTOMATIC = (
    "SELECT id FROM events WHERE type LIKE 'com.metering.credits.purchased.%'"
    " AND data->>'purchase' = 'automatic' ORDER BY id"
)


@pytest.fixture
def pipeline(
    servers: Endpoints, database_url: str, new_topic: str, tmp_path: Path
) -> Iterator[tuple[IngestProcess, ProjectorProcess]]:
    ingest = ingest_on(servers, database_url, new_topic, tmp_path)
    projector = ProjectorProcess(
        database_url,
        tmp_path,
        batch_size=100,
        kafka_bootstrap=servers.kafka_bootstrap,
        topic=new_topic,
    )
    with running(ingest, projector):
        yield ingest, projector


async def extra_credits(db: asyncpg.Connection) -> Decimal:
    value = await db.fetchval("SELECT coalesce(sum(extra_credits), 0) FROM billing_periods")
    return Decimal(value)


async def test_each_crossing_buys_one_pack_even_when_the_projector_restarts(
    servers: Endpoints,
    new_topic: str,
    db: asyncpg.Connection,
    pipeline: tuple[IngestProcess, ProjectorProcess],
) -> None:
    ingest, projector = pipeline
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(days=10), now + timedelta(days=20)
    async with Emitter(servers.kafka_bootstrap, new_topic, "runner-test") as emitter:
        await emitter.emit(
            "com.metering.subscription.period_started.v1",
            {
                "organization_id": "org-1",
                "plan": "core",
                "plan_credits": "100",
                "period_start": start,
                "period_end": end,
            },
            event_id="sub-1",
            time=start,
        )
        await emitter.emit(
            "com.metering.credits.auto_purchase_configured.v1",
            {
                "organization_id": "org-1",
                "enabled": True,
                "threshold_credits": "20",
                "pack_credits": "50",
            },
            event_id="auto-1",
            time=start,
        )
        usage = [
            module_execution("org-1", i, Decimal(5), when=now - timedelta(hours=1))
            for i in range(17)
        ]
        await emitter.send_many(usage)  # 85 used of 100: 15 left, below 20

        await eventually(lambda: _extra_at_least(db, Decimal(50)))
        assert await db.fetch(AUTOMATIC) != []
        more = [
            module_execution("org-1", 100 + i, Decimal(5), when=now - timedelta(minutes=30))
            for i in range(10)
        ]
        await emitter.send_many(more)  # 135 used of 150: 15 left, a second crossing

        await eventually(lambda: _extra_at_least(db, Decimal(100)))

    purchases = [r["id"] for r in await db.fetch(AUTOMATIC)]
    assert len(purchases) == 2
    assert purchases[0].endswith(":1")
    assert purchases[1].endswith(":2")
    # Each carries its crossing (credits go down by 5: 20 left is not below 20, 15 is),
    # and the purchases read model lists it.
    crossings = await db.fetch(
        "SELECT data->>'threshold_credits' AS threshold, data->>'remaining_credits' AS remaining"
        " FROM events WHERE type LIKE 'com.metering.credits.purchased.%' ORDER BY id"
    )
    assert [(Decimal(r["threshold"]), Decimal(r["remaining"])) for r in crossings] == [
        (Decimal(20), Decimal(15))
    ] * 2
    listed = await db.fetch(
        "SELECT event_id, purchase, threshold_credits, remaining_credits FROM credit_purchases"
        " ORDER BY purchased_at, event_id"
    )
    assert [tuple(r) for r in listed] == [
        (purchases[0], "automatic", Decimal(20), Decimal(15)),
        (purchases[1], "automatic", Decimal(20), Decimal(15)),
    ]

    # A crash after sending but before marking it sent: the purchase goes out again.
    await db.execute("UPDATE auto_purchase_outbox SET sent_at = NULL")
    projector.stop()
    projector.start()
    await eventually(lambda: _none_unsent(db), timeout_s=30)
    await eventually(lambda: _duplicates_seen(ingest, 2), timeout_s=30)

    assert [r["id"] for r in await db.fetch(AUTOMATIC)] == purchases
    assert await extra_credits(db) == Decimal(100)


async def _extra_at_least(db: asyncpg.Connection, credits: Decimal) -> bool:
    return await extra_credits(db) >= credits


async def _none_unsent(db: asyncpg.Connection) -> bool:
    return not await db.fetchval("SELECT count(*) FROM auto_purchase_outbox WHERE sent_at IS NULL")


def _duplicates_seen(ingest: IngestProcess, expected: int) -> bool:
    metric = 'ingest_events_duplicate_total{type="com.metering.credits.purchased.v1"}'
    return ingest.metrics().get(metric, 0) >= expected


async def test_only_a_batch_that_buys_waits_for_a_durable_commit(db: asyncpg.Connection) -> None:
    # Projector batches commit without waiting for the WAL flush (their effect is
    # derived again after a crash); a purchase's `purchased_at` is the clock's, so a
    # batch that decides one must not be lost and decided again with another time.
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=10)
    period = period_started("org-1", "100", start, now + timedelta(days=20))
    configured = auto_purchase_configured("org-1", "auto-1", start, "20", "50")
    await prepare_connection(db)
    await claim(db, 1)
    settings = []
    for n, events in enumerate(
        [
            [period, configured],
            [module_execution("org-1", 1, Decimal(5), when=now)],
            [module_execution("org-1", 2, Decimal(80), when=now)],
        ]
    ):
        await store(db, events, first_offset=n * 10)
        async with db.transaction():  # the batch's own transaction is a savepoint in it
            await project_batch(db, 100, auto_purchase=True)
            settings.append(await db.fetchval("SHOW synchronous_commit"))
    assert settings == ["off", "off", "on"]
    assert await db.fetchval("SELECT count(*) FROM auto_purchase_outbox") == 1


def _purchase(n: int, credits: str, when: datetime) -> TypedEvent:
    """The purchase the outbox sends for its decision `n`, as it would come back."""
    return build_event(
        "com.metering.credits.purchased.v1",
        {
            "organization_id": "org-1",
            "credits": credits,
            "purchase": "automatic",
            "purchased_at": when,
        },
        source="billing",
        event_id=f"bought-{n}",
        time=when,
    )


async def test_automatic_purchases_stop_at_the_periods_cap_until_it_is_raised(
    db: asyncpg.Connection,
) -> None:
    # Plan 100, packs of 40 below 20 left: the default cap (the plan's 100 credits)
    # allows two packs (80); a runaway scenario that keeps crossing gets no third
    # until max_credits_per_period raises the cap.
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=10)
    period = period_started("org-1", "100", start, now + timedelta(days=20))

    def configured(event_id: str, cap: str | None) -> TypedEvent:
        at = start + timedelta(seconds=len(event_id))
        return auto_purchase_configured("org-1", event_id, at, "20", "40", cap)

    def used(n: int, credits: int) -> TypedEvent:
        return module_execution("org-1", n, Decimal(credits), when=now - timedelta(minutes=n))

    await prepare_connection(db)
    await claim(db, 1)
    decided = []
    for n, events in enumerate(
        [
            [period, configured("auto-1", None)],
            [used(1, 85)],  # 15 left: buy 1 (40 of 100)
            [_purchase(1, "40", now)],  # 55 left: armed again
            [used(2, 45)],  # 10 left: buy 2 (80 of 100)
            [_purchase(2, "40", now)],  # 50 left
            [used(3, 45)],  # 5 left: a third would make 120 > 100
            [configured("auto-raised", "200")],
            [used(4, 1)],  # 4 left, still below: buy 3 (120 of 200)
        ]
    ):
        await store(db, events, first_offset=n * 10)
        async with db.transaction():
            await project_batch(db, 100, auto_purchase=True)
        decided.append(await db.fetchval("SELECT count(*) FROM auto_purchase_outbox"))

    assert decided == [0, 1, 1, 2, 2, 2, 2, 3]
