"""One refused event is parked, every other tenant's events go on, a replay is exact (#11 §3)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from decimal import Decimal

import asyncpg
import pytest
from typer.testing import CliRunner, Result

from schemas import TypedEvent
from services.cli import app
from services.infra import database
from services.projector import quarantine
from services.projector.projection import prepare_connection
from services.projector.rebuild import rebuild
from tests.integration.test_order_independence import snapshot
from tests.support.events import module_execution
from tests.support.projecting import project_everything
from tests.support.store import store

POISON = "ALTER TABLE runs ADD CONSTRAINT test_poison CHECK (run_id <> 'run-poison')"


def history(rng: random.Random) -> list[TypedEvent]:
    """50 organizations; organization org-7 has one event the test makes unprojectable."""
    events = []
    for n in range(1_000):
        org = f"org-{rng.randrange(50)}"
        events.append(
            module_execution(
                org, n, Decimal(rng.randint(1, 900)) / 100, source=org, run=f"run-{n % 37}"
            )
        )
    poison = module_execution("org-7", 5_000, Decimal(7), source="org-7", run="run-poison")
    events.insert(400, poison)
    return events


async def cli(args: list[str]) -> Result:
    """`metering ARGS`, in a thread: the command runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, app, args)


async def projected(url: str, events: list[TypedEvent], batch: int) -> asyncpg.Connection:
    db = await database.connect(url)
    await prepare_connection(db)
    for offset in range(0, len(events), 100):
        await store(db, events[offset : offset + 100], offset)
    await project_everything(db, batch)
    return db


async def test_a_refused_event_is_parked_the_rest_projected_and_a_replay_is_exact(
    new_database: Callable[[], str],
) -> None:
    events = history(random.Random(3))
    clean = await projected(new_database(), events, 1_000)  # the same events, nothing refused
    url = new_database()
    db = await database.connect(url)
    try:
        await db.execute(POISON)
    finally:
        await db.close()
    db = await projected(url, events, 1_000)
    try:
        parked = await quarantine.held(db)
        assert [(p.organization_id, p.id, p.sqlstate) for p in parked] == [
            ("org-7", "evt-5000", "23514")
        ]
        assert "test_poison" in parked[0].error
        # Every other event, org-7's later ones included, is in the read models.
        used = await db.fetchval("SELECT sum(credits_used) FROM billing_periods")
        assert used == await clean.fetchval("SELECT sum(credits_used) FROM billing_periods") - 7
        assert await db.fetchval("SELECT count(*) FROM module_executions") == len(events) - 1

        with pytest.raises(asyncpg.CheckViolationError):  # still refused: stays held
            await quarantine.replay(db, parked[0].position)
        assert len(await quarantine.held(db)) == 1

        await db.execute("ALTER TABLE runs DROP CONSTRAINT test_poison")
        version = "SELECT version FROM organization_versions WHERE organization_id = 'org-7'"
        before = await db.fetchval(version)
        await quarantine.replay(db, parked[0].position)
        assert await quarantine.held(db) == []
        # The organization's version moves: the API's ETags change with its figures.
        assert await db.fetchval(version) != before
        assert await snapshot(db) == await snapshot(clean)
    finally:
        await db.close()
        await clean.close()


async def test_a_dropped_event_stays_out_and_a_rebuild_leaves_it_out_too(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = history(random.Random(4))
    url = new_database()
    db = await database.connect(url)
    await db.execute(POISON)
    await db.close()
    db = await projected(url, events, 64)
    try:
        [parked] = await quarantine.held(db)
        monkeypatch.setenv("METERING_DATABASE_URL", url)
        listed = await cli(["quarantine", "list"])
        assert listed.exit_code == 0, listed.output
        assert "evt-5000" in listed.output
        unknown = await cli(["quarantine", "replay", "999999"])
        assert unknown.exit_code == 2
        assert "no event at position 999999" in unknown.output
        refused = await cli(["quarantine", "replay", str(parked.position)])
        assert refused.exit_code == 1
        assert "still refused" in refused.output
        dropped = await cli(
            ["quarantine", "drop", str(parked.position), "--reason", "test run, not billed"],
        )
        assert dropped.exit_code == 0, dropped.output
        [released] = await quarantine.held(db, everything=True)
        assert (released.released_how, released.release_reason) == (
            "dropped",
            "test run, not billed",
        )

        await db.execute("ALTER TABLE runs DROP CONSTRAINT test_poison")
        live = await snapshot(db)
        report = await rebuild(url)
        assert await snapshot(db) == live  # swapped in: the drop is left out again
        assert report.swapped
        assert await db.fetchval("SELECT count(*) FROM module_executions") == len(events) - 1
    finally:
        await db.close()


async def test_an_error_no_event_can_cause_stops_the_batch_instead_of_parking_events(
    db: asyncpg.Connection,
) -> None:
    # A bug in our SQL or schema (class 42) must not park good events one by one.
    await store(db, [module_execution("org-1", n, Decimal(1)) for n in range(5)])
    await db.execute("ALTER TABLE runs RENAME COLUMN errors TO errors_renamed")
    with pytest.raises(asyncpg.UndefinedColumnError):
        await quarantine.project_next(db, 100)
    assert await quarantine.held(db) == []
