"""The projector as a real process: crash-safe, and late events land in their own period."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

import asyncpg
import pytest

from services.emitter import build_event
from services.infra import database
from services.projector.projection import prepare_connection
from tests.support.events import module_execution
from tests.support.history import history
from tests.support.processes import ProjectorProcess
from tests.support.projecting import project_everything
from tests.support.store import store
from tests.support.waiting import eventually


@pytest.fixture
def projector(database_url: str, tmp_path: Path) -> Iterator[ProjectorProcess]:
    process = ProjectorProcess(database_url, tmp_path, batch_size=200)
    yield process
    process.stop()


async def checkpoint(db: asyncpg.Connection) -> int:
    value = await db.fetchval("SELECT position FROM projection_checkpoints")
    return int(value or 0)


async def test_a_killed_projector_restarts_with_exact_totals(
    db: asyncpg.Connection, projector: ProjectorProcess
) -> None:
    events, expected = history(seed=21, events=20_000)
    for i in range(0, len(events), 5000):
        await store(db, events[i : i + 5000], first_offset=i)
    last = int(await db.fetchval("SELECT max(position) FROM events"))
    projector.start()

    await eventually(lambda: _checkpoint_at_least(db, 2000))
    projector.kill()
    assert await checkpoint(db) < last, "projection finished before the kill; nothing was tested"
    projector.start()
    await eventually(lambda: _checkpoint_at_least(db, last))

    used = await db.fetch("SELECT organization_id, period_start, credits_used FROM billing_periods")
    assert {(r[0], r[1]): r[2] for r in used if r[2]} == dict(expected.period_used)
    assert await db.fetchval("SELECT count(*) FROM module_executions") == expected.executions


async def test_late_events_land_in_their_own_day_and_period(
    db: asyncpg.Connection, projector: ProjectorProcess
) -> None:
    projector.start()
    november = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    october = datetime(2026, 10, 3, 22, 30, tzinfo=UTC)
    await store(db, [module_execution("org-1", 1, Decimal("5"), when=november, run="run-9")])
    finished = build_event(
        "com.metering.scenario_run.finished.v1",
        {
            "organization_id": "org-1",
            "scenario_id": "scn-1",
            "run_id": "run-9",
            "trigger": "scheduled",
            "status": "success",
            "started_at": november.isoformat(),
            "finished_at": november.isoformat(),
            "duration_ms": 1200,
        },
        source="test",
        event_id="fin-9",
        time=november,
    )
    await store(db, [finished], first_offset=1)
    await eventually(lambda: _checkpoint_at_least(db, 2))

    a_month_late = module_execution("org-1", 2, Decimal("1.25"), when=october, run="run-3")
    after_finish = module_execution("org-1", 3, Decimal("0.5"), when=november, run="run-9")
    await store(db, [a_month_late, after_finish], first_offset=2)
    await eventually(lambda: _checkpoint_at_least(db, 4))

    periods = await db.fetch(
        "SELECT period_start, credits_used FROM billing_periods WHERE organization_id = 'org-1'"
        " ORDER BY period_start"
    )
    assert [(r[0], r[1]) for r in periods] == [
        (datetime(2026, 10, 1, tzinfo=UTC), Decimal("1.25")),
        (datetime(2026, 11, 1, tzinfo=UTC), Decimal("5.5")),
    ]
    days = await db.fetch("SELECT day, credits_used FROM organization_daily_usage ORDER BY day")
    assert [(str(r[0]), r[1]) for r in days] == [
        ("2026-10-03", Decimal("1.25")),
        ("2026-11-24", Decimal("5.5")),
    ]
    metrics = projector.metrics()
    assert metrics['projector_events_total{projection="usage"}'] == 4
    assert metrics['projector_lag_positions{projection="usage"}'] == 0
    assert metrics['projector_freshness_seconds_count{projection="usage"}'] == 4
    run = await db.fetchrow("SELECT status, credits_used FROM runs WHERE run_id = 'run-9'")
    assert run is not None
    assert (run["status"], run["credits_used"]) == ("success", Decimal("5.5"))


async def _checkpoint_at_least(db: asyncpg.Connection, position: int) -> bool:
    return await checkpoint(db) >= position


async def test_a_standby_projector_takes_over_when_the_active_one_dies(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    first = ProjectorProcess(database_url, tmp_path / "first", batch_size=200)
    second = ProjectorProcess(database_url, tmp_path / "second", batch_size=200)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    active = 'projector_active{projection="usage"}'
    first.start()
    await eventually(lambda: first.metrics().get(active) == 1)
    second.start()
    try:
        await store(db, [module_execution("org-1", 1, Decimal("1"))])
        await eventually(lambda: _checkpoint_at_least(db, 1))
        assert second.metrics().get(active, 0) == 0

        first.kill()
        await store(db, [module_execution("org-1", 2, Decimal("2"))], first_offset=1)

        await eventually(lambda: _checkpoint_at_least(db, 2), timeout_s=30)
        assert second.metrics()[active] == 1
        assert await db.fetchval("SELECT credits_used FROM runs") == Decimal("3")
    finally:
        second.stop()
        first.stop()


async def test_one_tenants_refused_event_is_parked_while_fifty_others_stay_fresh(
    db: asyncpg.Connection, projector: ProjectorProcess, new_database: Callable[[], str]
) -> None:
    # #11 §3: one organization's event is made unprojectable (a CHECK); the
    # projector process parks it and keeps the other 50 organizations fresh,
    # and after the cause is fixed a replay makes every total exact.
    from services.projector import quarantine
    from tests.integration.test_order_independence import snapshot

    await db.execute("ALTER TABLE runs ADD CONSTRAINT test_poison CHECK (run_id <> 'run-poison')")
    projector.start()
    sent = []
    for wave in range(5):
        events = [
            module_execution(f"org-{n}", wave * 100 + n, Decimal(n + 1), source=f"org-{n}")
            for n in range(50)
        ]
        if wave == 1:
            events.insert(20, module_execution("org-7", 999, Decimal(9), run="run-poison"))
        await store(db, events, first_offset=wave * 100)
        sent += events
        head = int(await db.fetchval("SELECT max(position) FROM events"))
        await eventually(partial(_checkpoint_at_least, db, head), timeout_s=30)
        fresh = await db.fetchval("SELECT count(*) FROM module_executions")
        assert fresh == (wave + 1) * 50, "every other organization's events are projected"

    [parked] = await quarantine.held(db)
    assert (parked.organization_id, parked.id) == ("org-7", "evt-999")
    await eventually(
        lambda: projector.metrics().get('projector_quarantine_held_events{projection="usage"}') == 1
    )
    assert projector.metrics()['projector_quarantined_events_total{projection="usage"}'] == 1

    await db.execute("ALTER TABLE runs DROP CONSTRAINT test_poison")
    await quarantine.replay(db, parked.position)
    clean = await database.connect(new_database())
    try:
        await prepare_connection(clean)
        await store(clean, sent)
        await project_everything(clean, 1000)
        assert await snapshot(db) == await snapshot(clean)
    finally:
        await clean.close()
