"""Every API query is served by an index of a read model, and never reads the event store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.query_api import queries

NOW = datetime(2026, 11, 24, tzinfo=UTC)
START = datetime(2026, 11, 1, tzinfo=UTC)

CASES: dict[str, tuple[str, tuple[Any, ...]]] = {
    "current period": (queries.CURRENT_PERIOD, ("org-1", NOW)),
    "period starting": (queries.PERIOD_STARTING, ("org-1", date(2026, 11, 1))),
    "daily": (queries.DAILY, ("org-1", date(2026, 11, 1), date(2026, 11, 30))),
    "billing periods": (queries.BILLING_PERIODS, ("org-1", NOW, 25)),
    "scenarios": (queries.SCENARIOS, ("org-1", START, Decimal(5), "scn-1", 21)),
    "scenario": (queries.SCENARIO, ("org-1", "scn-1", START)),
    "runs": (queries.RUNS, ("org-1", "scn-1", NOW, "run-9", 21)),
    "all runs": (queries.ALL_RUNS, ("org-1", START, NOW, "", None, None, None, 21)),
    "all runs, filtered": (
        queries.ALL_RUNS,
        ("org-1", START, NOW, "run-9", "scn-1", "error", "ai_agent", 21),
    ),
    "scenario modules": (
        queries.SCENARIO_MODULES,
        ("org-1", START, "scn-1", Decimal(5), "m-1", 101),
    ),
    "scenario known": (queries.SCENARIO_KNOWN, ("org-1", "scn-1")),
    "scenario daily": (
        queries.SCENARIO_DAILY,
        ("org-1", "scn-1", date(2026, 11, 1), date(2026, 11, 30)),
    ),
    "run": (queries.RUN, ("org-1", "run-1")),
    "apps": (queries.APPS, ("org-1", START)),
    "period used": (queries.PERIOD_USED, ("org-1", START)),
    "purchases": (queries.PURCHASES, ("org-1", START, NOW, START, "src", "id", 101)),
    "run modules": (queries.RUN_MODULES, ("org-1", "run-1")),
    "run log": (queries.RUN_LOG, ("org-1", "run-1", NOW, 7, 1001)),
    "burn days": (
        queries.BURN_DAYS,
        (["org-1", "org-2"], date(2026, 11, 18), date(2026, 11, 24)),
    ),
    "scenario burn days": (
        queries.SCENARIO_BURN_DAYS,
        ("org-1", date(2026, 11, 18), date(2026, 11, 24)),
    ),
    "scheduled floor": (queries.SCHEDULED_FLOOR, ("org-1", START, "Asia/Tokyo")),
}


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += nodes(child)
    return found


@pytest.mark.parametrize("name", sorted(CASES))
async def test_query_uses_an_index_and_not_the_event_store(
    db: asyncpg.Connection, name: str
) -> None:
    sql, args = CASES[name]
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        raw = await db.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    plan = json.loads(raw)[0]["Plan"]

    scanned = [(n["Node Type"], n.get("Relation Name")) for n in nodes(plan)]
    assert not [s for s in scanned if s[0] == "Seq Scan"], scanned
    assert "events" not in {relation for _, relation in scanned}


async def test_usage_gauges_query_reads_only_current_periods(db: asyncpg.Connection) -> None:
    raw = await db.fetchval(f"EXPLAIN (FORMAT JSON) {queries.USAGE_GAUGES}", 0.75, 1000)
    relations = {n.get("Relation Name") for n in nodes(json.loads(raw)[0]["Plan"])} - {None}
    assert relations == {"billing_periods"}


async def test_readiness_tells_a_stalled_projector_from_an_idle_one(
    db: asyncpg.Connection, database_url: str
) -> None:
    from services.projector.projection import project_batch
    from services.query_api.queries import Reader
    from tests.support.events import module_execution
    from tests.support.store import store
    from tests.support.waiting import eventually

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    reader = Reader(pool)
    try:
        assert await reader.projector_stalled_s() is None  # nothing to do: not stalled
        await store(db, [module_execution("org-1", 1, Decimal(1))])
        waiting = await reader.projector_stalled_s()
        assert waiting is not None  # an event waits and the projector never moved
        # The projector may wait on a long transaction elsewhere in the cluster.
        await eventually(lambda: project_batch(db, 10))
        assert await reader.projector_stalled_s() is None  # caught up and idle: ready
    finally:
        await pool.close()
