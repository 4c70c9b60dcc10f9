"""Customer notifications: each threshold crossing notified once, re-armed by added credits.

The projector decides them in its batches (services/projector/sql/notifications.sql):
an organization's credits at 75, 90 and 100 %, a scenario's budget at 90 and 100 %,
and the auto-purchase cap, for running subscribed periods only.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from schemas import TypedEvent
from schemas.notifications import notification_event
from services.emitter import build_event
from services.projector.projection import prepare_connection, project_batch
from services.projector.shards import claim
from services.projector.webhooks import add_endpoint
from tests.integration.test_attribution import plan_changed
from tests.support.events import (
    auto_purchase_configured,
    budget_set,
    module_execution,
    period_started,
)
from tests.support.store import store

NOW = datetime.now(UTC).replace(microsecond=0)
START, END = NOW - timedelta(days=10), NOW + timedelta(days=20)

NOTIFIED = "SELECT event_id, type, data FROM notification_outbox ORDER BY decided_at, event_id"


def period(plan_credits: str = "100") -> TypedEvent:
    return period_started("org-1", plan_credits, START, END)


def purchase(n: int, credits: str) -> TypedEvent:
    return build_event(
        "com.metering.credits.purchased.v1",
        {
            "organization_id": "org-1",
            "credits": credits,
            "purchase": "manual",
            "purchased_at": NOW - timedelta(minutes=30),
        },
        source="billing",
        event_id=f"bought-{n}",
        time=NOW - timedelta(minutes=30),
    )


def budget(n: int, credits: str, scenario: str = "scn-1") -> TypedEvent:
    return budget_set("org-1", scenario, f"budget-{n}", START + timedelta(seconds=n), credits)


def used(n: int, credits: int | str, scenario: str = "scn-1") -> TypedEvent:
    return module_execution(
        "org-1", n, Decimal(credits), scenario=scenario, when=NOW - timedelta(hours=1, minutes=n)
    )


async def project_each(db: asyncpg.Connection, batches: list[list[TypedEvent]]) -> list[list[str]]:
    """Store and project each batch in turn (auto-purchases and notifications decided);
    the ids of the notifications each batch decided."""
    await prepare_connection(db)
    await claim(db, 1)
    decided, seen = [], 0
    for n, events in enumerate(batches):
        await store(db, events, first_offset=n * 100)
        async with db.transaction():
            while await project_batch(db, 100, auto_purchase=True, notify=True) is not None:
                pass
        ids = [r["event_id"] for r in await db.fetch(NOTIFIED)]
        decided.append(ids[seen:])
        seen = len(ids)
    return decided


def short(ids: list[str]) -> list[str]:
    """`credits:org-1:20261123T...Z:75:1` as `credits:75:1` (the period is the test's)."""
    return [":".join(p for i, p in enumerate(i.split(":")) if i not in (1, 2)) for i in ids]


async def test_each_threshold_is_notified_once_per_crossing_and_again_after_credits_are_added(
    db: asyncpg.Connection,
) -> None:
    decided = await project_each(
        db,
        [
            [period("100")],
            [used(1, 70)],  # 70 %
            [used(2, 6)],  # 76 %: 75
            [used(3, 1)],  # 77 %: nothing new
            [used(4, 20)],  # 97 %: 90
            [purchase(1, "100")],  # 97 of 200: every threshold armed again
            [used(5, 63)],  # 160 of 200 = 80 %: 75, a second time
            [used(6, 40)],  # 200 of 200: 90 and 100 at once
        ],
    )

    assert [short(d) for d in decided] == [
        [],
        [],
        ["credits:75:1"],
        [],
        ["credits:90:1"],
        [],
        ["credits:75:2"],
        ["credits:90:2", "credits:100:1"],
    ]
    rows = await db.fetch(NOTIFIED)
    first = json.loads(rows[0]["data"])
    assert first == {
        "organization_id": "org-1",
        "period_start": START.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "period_end": END.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "scope": "organization",
        "threshold_percent": 75,
        "used_credits": "76",
        "total_credits": "100",
        "crossing": 1,
        "crossed_at": (NOW - timedelta(hours=1, minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    }
    assert json.loads(rows[-1]["data"])["used_credits"] == "200"
    # Every row is a valid notification under its contract.
    for row in rows:
        event = notification_event(
            row["type"], json.loads(row["data"]), event_id=row["event_id"], source="t", time=NOW
        )
        assert event.type == "com.metering.credits.threshold_crossed.v1"


async def test_an_upgrade_re_arms_the_thresholds_it_brings_usage_back_under(
    db: asyncpg.Connection,
) -> None:
    decided = await project_each(
        db,
        [
            [period("100")],
            [used(1, 92)],  # 92 %: 75 and 90
            [plan_changed("org-1", "200", START + timedelta(days=1), START + timedelta(days=1))],
            [used(2, 60)],  # 152 of 200 = 76 %: 75 again; 90 is armed, not crossed
        ],
    )

    assert [short(d) for d in decided] == [
        [],
        ["credits:75:1", "credits:90:1"],
        [],
        ["credits:75:2"],
    ]
    data = json.loads((await db.fetch(NOTIFIED))[-1]["data"])
    assert (data["used_credits"], data["total_credits"], data["crossing"]) == ("152", "200", 2)


async def test_usage_on_a_calendar_month_stand_in_is_never_notified_until_its_period_is_known(
    db: asyncpg.Connection,
) -> None:
    decided = await project_each(
        db,
        [
            [used(1, 80)],  # no subscription yet: a stand-in period, credits unknown
            [used(2, 15)],
            [period("100")],  # the real period arrives late: 95 % of 100
        ],
    )

    assert [short(d) for d in decided] == [[], [], ["credits:75:1", "credits:90:1"]]
    periods = {json.loads(r["data"])["period_start"] for r in await db.fetch(NOTIFIED)}
    assert periods == {START.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}


async def test_a_scenario_budget_is_notified_at_90_and_100_percent_and_again_once_raised(
    db: asyncpg.Connection,
) -> None:
    decided = await project_each(
        db,
        [
            [period("1000"), budget(1, "50")],
            [used(1, 40), used(2, 500, scenario="scn-2")],  # scn-1 at 80 %; scn-2 has none
            [used(3, 5)],  # 90 %
            [used(4, 5)],  # 100 %
            [budget(2, "100")],  # 50 of 100: armed again
            [used(5, 42)],  # 92 %
        ],
    )

    # The organization stays under 75 % (592 of 1000); scn-2 has no budget.
    assert [short(d) for d in decided] == [
        [],
        [],
        ["budget:scn-1:90:1"],
        ["budget:scn-1:100:1"],
        [],
        ["budget:scn-1:90:2"],
    ]
    data = json.loads((await db.fetch(NOTIFIED))[1]["data"])
    assert (data["scope"], data["scenario_id"], data["used_credits"], data["total_credits"]) == (
        "scenario",
        "scn-1",
        "50",
        "50",
    )


async def test_a_period_without_credits_is_never_notified_but_its_budgets_are(
    db: asyncpg.Connection,
) -> None:
    decided = await project_each(db, [[period("0"), budget(1, "10")], [used(1, 10)]])

    assert [short(d) for d in decided] == [[], ["budget:scn-1:90:1", "budget:scn-1:100:1"]]


async def test_the_auto_purchase_cap_reached_is_notified_once_until_it_is_raised(
    db: asyncpg.Connection,
) -> None:
    def configured(event_id: str, cap: str) -> TypedEvent:
        at = START + timedelta(seconds=len(event_id))
        return auto_purchase_configured("org-1", event_id, at, "20", "40", cap)

    def bought(n: int) -> TypedEvent:  # the purchase the outbox sends, come back
        return build_event(
            "com.metering.credits.purchased.v1",
            {
                "organization_id": "org-1",
                "credits": "40",
                "purchase": "automatic",
                "purchased_at": NOW,
            },
            source="billing",
            event_id=f"bought-{n}",
            time=NOW,
        )

    decided = await project_each(
        db,
        [
            [period("100"), configured("auto-1", "40")],  # one pack at most
            [used(1, 85)],  # 15 left: buy 1 (40 of 40)
            [bought(1)],
            [used(2, 45)],  # 10 left: a second pack would make 80 > 40: the cap
            [used(3, 1)],  # still capped: not again
            [configured("auto-raised", "200")],  # a pack fits again: armed
            [used(4, 1)],  # buy 2
        ],
    )

    caps = [[i for i in short(d) if i.startswith("auto_purchase_cap")] for d in decided]
    assert caps == [[], [], [], ["auto_purchase_cap:100:1"], [], [], []]
    assert await db.fetchval("SELECT count(*) FROM auto_purchase_outbox") == 2
    row = await db.fetchrow(NOTIFIED.replace("ORDER BY", "WHERE event_id LIKE 'auto%' ORDER BY"))
    assert row is not None
    assert row["type"] == "com.metering.credits.auto_purchase_cap_reached.v1"
    data = json.loads(row["data"])
    assert (data["cap_credits"], data["bought_credits"]) == ("40", "40")


@pytest.mark.parametrize("seed", range(6))
async def test_rising_usage_notifies_each_threshold_once_whatever_the_order_and_the_cuts(
    db: asyncpg.Connection, seed: int
) -> None:
    # Usage only rises (no credits added): each threshold is crossed once, so it is
    # notified once, with the same id, however events arrive and are cut into batches,
    # the subscription period included (before it, usage sits on a stand-in).
    rng = random.Random(seed)
    events = [period("100"), budget(1, "50")]
    events += [used(n, 10, scenario=f"scn-{n % 2 + 1}") for n in range(1, 11)]
    rng.shuffle(events)
    batches = []
    while events:
        cut = rng.randint(1, 4)
        batches.append(events[:cut])
        events = events[cut:]

    decided = await project_each(db, batches)

    assert sorted(short([i for d in decided for i in d])) == [
        "budget:scn-1:100:1",
        "budget:scn-1:90:1",
        "credits:100:1",
        "credits:75:1",
        "credits:90:1",
    ]


async def test_a_notification_is_queued_for_each_webhook_of_its_organization(
    db: asyncpg.Connection,
) -> None:
    first, _ = await add_endpoint(db, "org-1", "https://hooks.example/a")
    second, _ = await add_endpoint(db, "org-1", "https://hooks.example/b")
    await add_endpoint(db, "org-2", "https://hooks.example/a")

    await project_each(db, [[period("100")], [used(1, 80)]])

    deliveries = await db.fetch(
        "SELECT event_id, endpoint_id, status FROM webhook_deliveries ORDER BY endpoint_id"
    )
    [event_id] = [r["event_id"] for r in await db.fetch(NOTIFIED)]
    assert sorted((r["event_id"], r["endpoint_id"], r["status"]) for r in deliveries) == sorted(
        [(event_id, first, "pending"), (event_id, second, "pending")]
    )
