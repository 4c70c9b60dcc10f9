"""The usage projection: read models that reconcile with the events, whatever the batching."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from services.query_api import reconciliation
from tests.support.history import history
from tests.support.projecting import project_everything
from tests.support.store import store


async def totals(db: asyncpg.Connection, sql: str) -> dict[tuple[object, ...], Decimal]:
    return {tuple(row)[:-1]: row[-1] for row in await db.fetch(sql)}


@pytest.mark.parametrize("batch", [7, 1000])
async def test_read_models_equal_totals_computed_from_the_events(
    db: asyncpg.Connection, batch: int
) -> None:
    events, expected = history(seed=batch, events=3000)
    await store(db, events)

    assert await project_everything(db, batch) == len(events)

    assert await totals(
        db, "SELECT organization_id, period_start, credits_used FROM billing_periods"
    ) == {k: v for k, v in expected.period_used.items()} | {
        k: Decimal(0) for k in expected.period_extra if k not in expected.period_used
    }
    assert await totals(
        db,
        "SELECT organization_id, period_start, extra_credits FROM billing_periods"
        " WHERE extra_credits > 0",
    ) == dict(expected.period_extra)
    assert await totals(
        db, "SELECT organization_id, day, credits_used FROM organization_daily_usage"
    ) == dict(expected.daily)
    assert await totals(
        db, "SELECT organization_id, scenario_id, credits_used FROM scenario_usage"
    ) == dict(expected.scenario)
    assert await totals(
        db,
        "SELECT organization_id, period_start, scenario_id, credits_used"
        " FROM scenario_period_usage",
    ) == dict(expected.scenario_period)
    assert await totals(db, "SELECT organization_id, run_id, credits_used FROM runs") == dict(
        expected.run
    )
    assert await totals(
        db, "SELECT organization_id, run_id, module_id, credits_used FROM run_modules"
    ) == dict(expected.run_module)
    runs = await totals(db, "SELECT organization_id, scenario_id, runs FROM scenario_usage")
    assert runs == {k: len(v) for k, v in expected.runs_per_scenario.items()}
    assert await db.fetchval("SELECT count(*) FROM module_executions") == expected.executions


async def test_totals_reconcile_module_to_run_to_scenario_to_organization(
    db: asyncpg.Connection,
) -> None:
    events, _ = history(seed=5, events=2000)
    await store(db, events)
    await project_everything(db, 250)

    # The service's own check (GET /v1/operator/reconciliation), DESIGN rule 8.
    mismatches = await reconciliation.totals(db)
    assert mismatches == []


async def test_days_follow_the_organization_time_zone_and_periods_its_subscription(
    db: asyncpg.Connection,
) -> None:
    from datetime import UTC, datetime

    from services.emitter import build_event
    from tests.support.events import module_execution

    subscription = build_event(
        "com.metering.subscription.period_started.v1",
        {
            "organization_id": "org-ny",
            "plan": "pro",
            "plan_credits": "10000",
            "period_start": "2026-11-15T05:00:00Z",
            "period_end": "2026-12-15T05:00:00Z",
            "timezone": "America/New_York",
        },
        source="test",
        event_id="sub-1",
        time=datetime(2026, 11, 15, 5, tzinfo=UTC),
    )
    late_evening = module_execution(
        "org-ny", 1, Decimal("2"), when=datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    )
    before_subscription = module_execution(
        "org-ny", 2, Decimal("3"), when=datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    )
    await store(db, [subscription, late_evening, before_subscription])
    await project_everything(db, 100)

    days = await db.fetch("SELECT day::text, credits_used FROM organization_daily_usage ORDER BY 1")
    assert [tuple(r) for r in days] == [("2026-11-10", Decimal("3")), ("2026-11-23", Decimal("2"))]
    periods = await db.fetch(
        "SELECT period_start, period_end, plan_credits, credits_used FROM billing_periods"
        " ORDER BY period_start"
    )
    # Before the first subscription: the calendar month, clipped where the real
    # period starts, so that no two periods overlap (REVIEW B1).
    assert [tuple(r) for r in periods] == [
        (
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 11, 15, 5, tzinfo=UTC),
            Decimal(0),
            Decimal("3"),
        ),
        (
            datetime(2026, 11, 15, 5, tzinfo=UTC),
            datetime(2026, 12, 15, 5, tzinfo=UTC),
            Decimal("10000"),
            Decimal("2"),
        ),
    ]
