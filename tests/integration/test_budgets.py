"""Scenario budgets: the budget_set event with the latest set_at wins, whatever the order
the events are stored and projected in, and one without credits removes the budget."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from schemas import TypedEvent
from services.emitter import build_event
from tests.support.projecting import project_everything
from tests.support.store import store

SET = datetime(2026, 11, 20, 12, tzinfo=UTC)


def budget(event_id: str, scenario: str, at: datetime, credits: str | None) -> TypedEvent:
    data: dict[str, object] = {"organization_id": "org-1", "scenario_id": scenario, "set_at": at}
    if credits is not None:
        data["credits_per_period"] = credits
    return build_event(
        "com.metering.scenario.budget_set.v1", data, source="test", event_id=event_id, time=at
    )


HISTORY = [
    budget("b1", "scn-a", SET, "100"),
    budget("b2", "scn-a", SET + timedelta(days=1), "250.5"),  # the latest for scn-a
    budget("b3", "scn-a", SET - timedelta(days=1), "10"),
    budget("b4", "scn-b", SET, "40"),
    budget("b5", "scn-b", SET + timedelta(hours=1), None),  # the latest: no budget
]


async def budgets(db: asyncpg.Connection) -> dict[str, Decimal | None]:
    rows = await db.fetch("SELECT scenario_id, credits_per_period FROM scenario_budgets")
    return {r["scenario_id"]: r["credits_per_period"] for r in rows}


@pytest.mark.parametrize("order", list(itertools.permutations(range(5)))[::17])
async def test_the_latest_budget_wins_in_any_order(
    db: asyncpg.Connection, order: tuple[int, ...]
) -> None:
    for offset, n in enumerate(order):  # one event per batch: each projected alone
        await store(db, [HISTORY[n]], first_offset=offset)
        await project_everything(db, 1)

    assert await budgets(db) == {"scn-a": Decimal("250.5"), "scn-b": None}


async def test_the_latest_budget_wins_within_one_batch(db: asyncpg.Connection) -> None:
    await store(db, HISTORY[::-1])
    await project_everything(db, 100)

    assert await budgets(db) == {"scn-a": Decimal("250.5"), "scn-b": None}
