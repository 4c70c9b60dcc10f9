"""The API's billing rules (services/query_api/billing.py) agree with the SQL that states them too.

On the real PostgreSQL: credits remaining as auto-purchase computes them
(services/projector/sql/auto_purchase.sql), which periods the usage gauges pick
and in which order (USAGE_GAUGES in services/query_api/queries.py), and the
period shown without a subscription: the stand-in usage is filed in
(services/projector/sql/credit_events.sql). Exact decimals throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg

from services.projector.projection import queries
from services.query_api import billing
from services.query_api.queries import Reader
from services.query_api.routes.usage import period_of

D = Decimal


@dataclass(frozen=True)
class Period:
    organization_id: str
    plan_credits: Decimal
    extra_credits: Decimal
    credits_used: Decimal


PERIODS = [
    Period("org-typical", D("10000"), D("500"), D("7321.25")),
    Period("org-sixths", D("1000"), D("200"), D("333.333333")),
    Period("org-exactly-used-up", D("100"), D("0"), D("100")),
    Period("org-just-over", D("100"), D("0"), D("100.000001")),
    Period("org-far-over", D("100"), D("50"), D("400")),
    Period("org-tenths", D("0.1"), D("0.2"), D("0.29")),
    Period("org-no-credits", D("0"), D("0"), D("12.5")),
    Period("org-untouched", D("250"), D("0"), D("0")),
    Period("org-at-threshold", D("400"), D("0"), D("300")),
    Period("org-below-threshold", D("400"), D("0"), D("299.999999")),
    Period("org-close-second", D("3"), D("0"), D("2.4")),
    Period("org-close-first", D("3000000"), D("0"), D("2400000.001")),
    Period("org-huge", D("999999999999999999.999999"), D("0.000001"), D("1")),
]


async def record(db: asyncpg.Connection, periods: list[Period], start: datetime) -> None:
    """Running billing periods of organizations with auto-purchase on, committed."""
    for p in periods:
        await db.execute(
            "INSERT INTO organizations (organization_id, auto_purchase_enabled,"
            " auto_purchase_threshold, auto_purchase_pack) VALUES ($1, true, 10, 100)",
            p.organization_id,
        )
        await db.execute(
            "INSERT INTO billing_periods (organization_id, period_start, period_end,"
            " plan_credits, extra_credits, credits_used, subscribed)"
            " VALUES ($1, $2, $3, $4, $5, $6, true)",
            p.organization_id,
            start,
            start + timedelta(days=30),
            p.plan_credits,
            p.extra_credits,
            p.credits_used,
        )
    stored = await db.fetch(
        "SELECT organization_id, plan_credits, extra_credits, credits_used FROM billing_periods"
    )
    assert {Period(*row) for row in stored} == set(periods)  # numeric(24,6) kept every digit


async def test_remaining_credits_agree_with_auto_purchase(db: asyncpg.Connection) -> None:
    start = datetime.now(UTC) - timedelta(days=3)
    await record(db, PERIODS, start)
    statements = queries("auto_purchase.sql")
    clear, collect = statements["clear_candidates"], statements["collect_candidates"]
    assert clear.startswith("TRUNCATE batch_auto_purchase")
    assert collect.startswith("INSERT INTO batch_auto_purchase")

    async with db.transaction():  # the batch tables empty at commit
        await db.executemany(
            "INSERT INTO batch_usage (organization_id, period_start) VALUES ($1, $2)",
            [(p.organization_id, start) for p in PERIODS],
        )
        await db.execute(clear)
        await db.execute(collect)
        rows = await db.fetch("SELECT organization_id, remaining FROM batch_auto_purchase")

    in_sql = {row["organization_id"]: row["remaining"] for row in rows}
    in_python = {
        p.organization_id: billing.remaining(p.plan_credits, p.extra_credits, p.credits_used)
        for p in PERIODS
    }
    assert in_sql == in_python
    assert in_python["org-just-over"] == D("-0.000001")
    assert in_python["org-tenths"] == D("0.01")
    assert in_python["org-huge"] == D("999999999999999999")


async def test_usage_gauges_pick_and_order_periods_by_the_used_ratio(
    db: asyncpg.Connection, database_url: str
) -> None:
    await record(db, PERIODS, datetime.now(UTC) - timedelta(days=3))
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        reader = Reader(pool)
        # The setting is a float and reaches SQL as its exact binary value, as Decimal() gives it.
        for min_ratio in (0.0, 0.5, 0.75, 0.8, 1.0):
            rows = await reader.usage_gauges(min_ratio, 1000)
            in_sql = [(row["organization_id"], row["credits_used"], row["total"]) for row in rows]
            with_credits = [
                p
                for p in PERIODS
                if billing.total(p.plan_credits, p.extra_credits) or p.credits_used > 0
            ]
            picked = [
                p
                for p in with_credits
                if billing.used_ratio(
                    p.credits_used, billing.total(p.plan_credits, p.extra_credits)
                )
                >= D(min_ratio)
            ]
            picked.sort(
                key=lambda p: billing.used_ratio(
                    p.credits_used, billing.total(p.plan_credits, p.extra_credits)
                ),
                reverse=True,
            )
            in_python = [
                (p.organization_id, p.credits_used, billing.total(p.plan_credits, p.extra_credits))
                for p in picked
            ]
            assert in_sql == in_python, f"min_ratio={min_ratio}"
        top_two = [row["organization_id"] for row in await reader.usage_gauges(0.5, 2)]
    finally:
        await pool.close()

    # Usage without credits comes first (REVIEW B9): it is the most urgent to see.
    assert top_two == ["org-no-credits", "org-far-over"]


UTC_PLUS_2 = timezone(timedelta(hours=2))
UTC_MINUS_5 = timezone(timedelta(hours=-5))
INSTANTS = [
    datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2027, 1, 1, tzinfo=UTC),
    datetime(2027, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2027, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2028, 2, 29, tzinfo=UTC),
    datetime(2028, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 2, 29, 12, tzinfo=UTC),
    datetime(2000, 2, 29, 12, tzinfo=UTC),
    datetime(2100, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 4, 30, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 7, 31, 12, tzinfo=UTC),
    datetime(2026, 3, 1, 0, 30, tzinfo=UTC_PLUS_2),  # still February in UTC
    datetime(2026, 12, 31, 20, tzinfo=UTC_MINUS_5),  # already January in UTC
]


async def test_without_a_period_the_api_shows_the_stand_in_the_projector_files_usage_in(
    db: asyncpg.Connection, database_url: str
) -> None:
    # Two subscribed periods clip the calendar months next to them; every instant
    # (month ends, leap days, offsets) is projected, and the period the API shows
    # at that instant is the one the projector filed it in.
    from tests.support.billing_history import Period as Subscribed
    from tests.support.billing_history import _subscription
    from tests.support.events import module_execution
    from tests.support.projecting import project_everything
    from tests.support.store import store

    subscribed = [
        Subscribed(
            datetime(2026, 3, 10, 7, tzinfo=UTC), datetime(2026, 4, 10, 7, tzinfo=UTC), "UTC"
        ),
        Subscribed(datetime(2027, 1, 20, tzinfo=UTC), datetime(2027, 2, 20, tzinfo=UTC), "UTC"),
    ]
    instants = [t for t in INSTANTS if 2000 <= t.astimezone(UTC).year < 2100]
    instants += [datetime(2026, 3, 10, 6, 59, tzinfo=UTC), datetime(2026, 4, 10, 7, tzinfo=UTC)]
    instants += [datetime(2027, 1, 19, 23, 59, tzinfo=UTC), datetime(2027, 2, 25, tzinfo=UTC)]
    events = [_subscription("org-1", p, f"sub-{k}") for k, p in enumerate(subscribed)]
    events += [module_execution("org-1", k, D(1), when=t) for k, t in enumerate(instants)]
    await store(db, events)
    await project_everything(db, 1000)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        reader = Reader(pool)
        disagreements = []
        for t in instants:
            filed = await db.fetchrow(
                "SELECT period_start, period_end FROM billing_periods"
                " WHERE organization_id = 'org-1' AND period_start <= $1 AND $1 < period_end",
                t,
            )
            assert filed is not None, t
            shown = period_of(await reader.current_period("org-1", t))
            if shown != tuple(filed):
                disagreements.append((t, tuple(filed), shown))
    finally:
        await pool.close()

    assert disagreements == []
    # The stand-ins next to the subscribed periods are clipped by them.
    clipped = [
        (t, tuple(period_of(await _row(database_url, t))))
        for t in (datetime(2026, 4, 20, tzinfo=UTC), datetime(2027, 1, 5, tzinfo=UTC))
    ]
    assert clipped == [
        (
            datetime(2026, 4, 20, tzinfo=UTC),
            (datetime(2026, 4, 10, 7, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),
        ),
        (
            datetime(2027, 1, 5, tzinfo=UTC),
            (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 20, tzinfo=UTC)),
        ),
    ]


async def _row(url: str, t: datetime) -> asyncpg.Record:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        return await Reader(pool).current_period("org-1", t)
    finally:
        await pool.close()
