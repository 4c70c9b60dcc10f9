"""Credits land in the billing period and day of the event's own time (REVIEW §B)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from schemas import TypedEvent
from services.emitter import build_event
from tests.support.projecting import arrived_one_by_one, project_everything
from tests.support.store import store


def period_started(org: str, start: datetime, end: datetime, credits: str = "1000") -> TypedEvent:
    return build_event(
        "com.metering.subscription.period_started.v1",
        {
            "organization_id": org,
            "plan": "pro",
            "plan_credits": credits,
            "period_start": start,
            "period_end": end,
            "timezone": "UTC",
        },
        source="billing",
        event_id=f"sub-{org}-{start:%Y%m%d}",
        time=start,
    )


def purchase(org: str, credits: str, purchased_at: datetime, sent_at: datetime) -> TypedEvent:
    return build_event(
        "com.metering.credits.purchased.v1",
        {
            "organization_id": org,
            "credits": credits,
            "purchase": "manual",
            "purchased_at": purchased_at,
        },
        source="billing",
        event_id=f"purchase-{org}-{purchased_at:%Y%m%d%H%M}",
        time=sent_at,
    )


async def extra_by_period(db: asyncpg.Connection, org: str) -> list[tuple[datetime, Decimal]]:
    rows = await db.fetch(
        "SELECT period_start, extra_credits FROM billing_periods WHERE organization_id = $1"
        " ORDER BY period_start",
        org,
    )
    return [(r["period_start"], r["extra_credits"]) for r in rows]


async def test_extra_credits_count_in_the_period_they_were_purchased_in_not_sent_in(
    db: asyncpg.Connection,
) -> None:
    # REVIEW B5: bought in October, stamped (sent) on November 3.
    october = datetime(2026, 10, 1, tzinfo=UTC)
    november = datetime(2026, 11, 1, tzinfo=UTC)
    december = datetime(2026, 12, 1, tzinfo=UTC)
    await store(db, [period_started("org-1", october, november)])
    await store(db, [period_started("org-1", november, december)], first_offset=1)
    await store(
        db,
        [purchase("org-1", "500", datetime(2026, 10, 20, 10, tzinfo=UTC), november.replace(day=3))],
        first_offset=2,
    )

    await project_everything(db, 100)

    assert await extra_by_period(db, "org-1") == [(october, Decimal(500)), (november, Decimal(0))]


async def test_no_auto_purchase_for_usage_whose_subscription_is_not_known_yet(
    db: asyncpg.Connection,
) -> None:
    # REVIEW B2: the runner's usage arrives before the first subscription; with
    # plan credits unknown (0), the old projector bought a pack at once.
    from datetime import timedelta

    from services.projector.projection import project_batch
    from tests.support.events import module_execution

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
    configured = build_event(
        "com.metering.credits.auto_purchase_configured.v1",
        {
            "organization_id": "org-1",
            "enabled": True,
            "threshold_credits": "100",
            "pack_credits": "500",
        },
        source="billing",
        event_id="auto-1",
        time=start,
    )
    usage = module_execution("org-1", 1, Decimal(10), when=datetime.now(UTC))
    await store(db, [configured, usage])
    while await project_batch(db, 100, auto_purchase=True) is not None:
        pass
    await store(db, [period_started("org-1", start, start + timedelta(days=30))], first_offset=2)
    while await project_batch(db, 100, auto_purchase=True) is not None:
        pass

    assert await db.fetchval("SELECT count(*) FROM auto_purchase_outbox") == 0
    assert await db.fetchval(
        "SELECT credits_used FROM billing_periods WHERE period_start = $1", start
    ) == Decimal(10)


def plan_changed(org: str, credits: str, effective_at: datetime, sent_at: datetime) -> TypedEvent:
    return build_event(
        "com.metering.subscription.plan_changed.v1",
        {
            "organization_id": org,
            "plan": "business",
            "plan_credits": credits,
            "effective_at": effective_at,
        },
        source="billing",
        event_id=f"plan-{org}-{effective_at:%Y%m%d%H%M}",
        time=sent_at,
    )


async def test_a_plan_change_sets_the_credits_of_its_period_whenever_it_arrives(
    db: asyncpg.Connection,
) -> None:
    # REVIEW B3: 1,000-credit plan, upgrade to 50,000 mid-period: the period has 50,000,
    # also when the change arrives before the period's own subscription event.
    november = datetime(2026, 11, 1, tzinfo=UTC)
    december = datetime(2026, 12, 1, tzinfo=UTC)
    upgrade = plan_changed("org-1", "50000", datetime(2026, 11, 12, tzinfo=UTC), november)
    await store(db, [upgrade])
    await project_everything(db, 100)
    await store(db, [period_started("org-1", november, december, "1000")], first_offset=1)
    await store(db, [period_started("org-2", november, december, "1000")], first_offset=2)
    await store(
        db,
        [plan_changed("org-2", "50000", datetime(2026, 11, 12, tzinfo=UTC), november)],
        first_offset=3,
    )
    await project_everything(db, 1)

    rows = await db.fetch(
        "SELECT organization_id, plan, plan_credits FROM billing_periods ORDER BY 1"
    )
    assert [tuple(r) for r in rows] == [
        ("org-1", "business", Decimal(50000)),
        ("org-2", "business", Decimal(50000)),
    ]


async def test_plan_and_zone_are_the_latest_by_effective_time_whatever_arrives_last(
    new_database: Callable[[], str],
) -> None:
    # REVIEW B8: a backfilled old period_started, sent after today's, set the
    # organization's plan and zone ("latest by position").
    october = datetime(2026, 10, 1, tzinfo=UTC)
    november = datetime(2026, 11, 1, tzinfo=UTC)
    old = build_event(
        "com.metering.subscription.period_started.v1",
        {
            "organization_id": "org-1",
            "plan": "free",
            "plan_credits": "1000",
            "period_start": october,
            "period_end": november,
            "timezone": "Asia/Tokyo",
        },
        source="billing",
        event_id="old",
        time=october,
    )
    today = build_event(
        "com.metering.subscription.period_started.v1",
        {
            "organization_id": "org-1",
            "plan": "pro",
            "plan_credits": "10000",
            "period_start": november,
            "period_end": datetime(2026, 12, 1, tzinfo=UTC),
            "timezone": "Europe/Prague",
        },
        source="billing",
        event_id="today",
        time=november,
    )
    for order in ([old, today], [today, old]):
        async with arrived_one_by_one(new_database(), order) as db:
            row = await db.fetchrow("SELECT plan, plan_credits, timezone FROM organizations")
        assert row is not None
        assert tuple(row) == ("pro", Decimal(10000), "Europe/Prague"), order


async def test_a_period_sent_again_with_other_bounds_the_latest_by_time_wins_never_overlapping(
    new_database: Callable[[], str],
) -> None:
    # A billing system shortens a period (same start, a later event), and
    # another period is sent starting inside it: in either order the periods
    # are the latest definition's, clipped so that none overlap.
    start, end = datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)
    first = period_started("org-1", start, end)
    shortened = build_event(
        first.type,
        {
            **first.data.model_dump(),
            "period_end": datetime(2026, 10, 25, tzinfo=UTC),
            "plan_credits": "700",
        },
        source="billing",
        event_id="shortened",
        time=datetime(2026, 10, 20, tzinfo=UTC),
    )
    inside = period_started("org-1", datetime(2026, 10, 28, tzinfo=UTC), end, "3000")
    results = set()
    for order in (
        [first, shortened, inside],
        [inside, shortened, first],
        [shortened, first, inside],
    ):
        async with arrived_one_by_one(new_database(), order) as db:
            rows = await db.fetch(
                "SELECT period_start, period_end, plan_credits FROM billing_periods"
                " ORDER BY period_start"
            )
        results.add(tuple(tuple(r) for r in rows))
    assert results == {
        (
            (start, datetime(2026, 10, 25, tzinfo=UTC), Decimal(700)),
            (datetime(2026, 10, 28, tzinfo=UTC), end, Decimal(3000)),
        )
    }
