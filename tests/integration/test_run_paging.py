"""REVIEW D6: paging a scenario's runs never skips a run whose start arrives late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from services.emitter import build_event
from services.query_api.queries import Reader
from tests.support.events import module_execution
from tests.support.projecting import project_everything
from tests.support.store import store

T = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


async def test_a_run_whose_start_arrives_between_pages_is_not_skipped(
    db: asyncpg.Connection, database_url: str
) -> None:
    # Three runs known from their modules only: run-3 the newest.
    modules = [
        module_execution("org-1", i, Decimal(1), run=f"run-{i}", when=T + timedelta(minutes=i))
        for i in (1, 2, 3)
    ]
    await store(db, modules)
    await project_everything(db, 100)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        reader = Reader(pool)
        [first] = await reader.runs("org-1", "scn-1", None, 1)
        # run-1's own start arrives after the first page, from a clock later than its
        # module's: its place must not jump ahead of the cursor.
        started = build_event(
            "com.metering.scenario_run.started.v1",
            {
                "organization_id": "org-1",
                "scenario_id": "scn-1",
                "run_id": "run-1",
                "trigger": "manual",
                "started_at": T + timedelta(minutes=10),
            },
            source="runner-test",
            event_id="start-1",
            time=T + timedelta(minutes=10),
        )
        await store(db, [started], first_offset=len(modules))
        await project_everything(db, 100)
        seen, last = [first["run_id"]], first
        while rows := await reader.runs("org-1", "scn-1", (last["sort_time"], last["run_id"]), 1):
            last = rows[0]
            seen.append(last["run_id"])
    finally:
        await pool.close()

    assert first["run_id"] == "run-3"
    assert sorted(seen) == ["run-1", "run-2", "run-3"]
