"""The event store answers every question about the log: checkpoints, head, lag, caught up."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg

from services import event_store
from services.event_store import Tracking
from services.projector.projection import PROJECTION
from tests.support.events import module_execution
from tests.support.projecting import project_everything
from tests.support.store import store


async def test_each_projection_keeps_a_checkpoint_of_its_own(db: asyncpg.Connection) -> None:
    assert await event_store.read_tracking(db, "usage") == Tracking.start()

    await event_store.save_tracking(db, "usage", Tracking(10, 4))
    await event_store.save_tracking(db, "other", Tracking(12, 9))
    await event_store.save_tracking(db, "usage", Tracking(11, 7))

    assert await event_store.read_tracking(db, "usage") == Tracking(11, 7)
    assert await event_store.read_tracking(db, "other") == Tracking(12, 9)


async def test_head_lag_and_caught_up_follow_the_projection(db: asyncpg.Connection) -> None:
    assert await event_store.max_position(db) == 0
    assert await event_store.caught_up(db, PROJECTION)
    await store(db, [module_execution("org-1", n, Decimal("1.5")) for n in range(5)])

    assert await event_store.max_position(db) == 5
    assert not await event_store.caught_up(db, PROJECTION)
    assert await event_store.stalled_for_s(db, PROJECTION) is not None

    await project_everything(db, 2)

    assert await event_store.caught_up(db, PROJECTION)
    assert await event_store.lag(db, PROJECTION) == event_store.Lag(0, 0.0)
    assert await event_store.stalled_for_s(db, PROJECTION) is None


async def test_listeners_hear_of_appends_when_they_commit(
    db: asyncpg.Connection, database_url: str
) -> None:
    listener = await asyncpg.connect(database_url)
    heard = asyncio.Event()
    try:
        await event_store.listen(listener, heard.set)
        async with db.transaction():
            await event_store.announce_appended(db)
            await asyncio.sleep(0.2)
            assert not heard.is_set(), "announced before the commit"
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        await listener.close()


async def test_nothing_waiting_is_never_reported_as_stalled_whatever_the_position_order(
    db: asyncpg.Connection, database_url: str
) -> None:
    # REVIEW E1: transaction A takes its id first, B appends first (position 1)
    # and commits, A appends (position 2) and commits. In commit order (A, 2)
    # comes before (B, 1): the projector ends at position 1, below the head, with
    # nothing waiting; "head > checkpoint" called that a stall.
    other = await asyncpg.connect(database_url)
    try:
        first = other.transaction()
        await first.start()
        await other.execute("SELECT pg_current_xact_id()")
        await store(db, [module_execution("org-1", 1, Decimal(1))], 0)
        await store(other, [module_execution("org-1", 2, Decimal(2))], 1)
        await first.commit()
    finally:
        await other.close()
    order = await db.fetch("SELECT position FROM events ORDER BY transaction_id, position")
    assert [r["position"] for r in order] == [2, 1], "the setup did not cross the orders"

    await project_everything(db, 10)

    assert (await event_store.read_tracking(db, PROJECTION)).position == 1
    assert await event_store.caught_up(db, PROJECTION)
    assert await event_store.stalled_for_s(db, PROJECTION) is None


async def test_the_readiness_questions_probe_an_index_never_scan_the_store(
    db: asyncpg.Connection,
) -> None:
    # REVIEW E2: /readyz ran a Seq Scan on events for every probe.
    await store(db, [module_execution("org-1", n, Decimal(1)) for n in range(200)])
    await db.execute("ANALYZE events")
    await db.execute("SET enable_seqscan = off")  # the plan a large store gets
    for query in (event_store.STALLED_FOR, event_store.CAUGHT_UP):
        plan = "\n".join(r[0] for r in await db.fetch(f"EXPLAIN {query}", PROJECTION))
        assert "Seq Scan on events" not in plan, plan
        # Each monthly partition's copy of events_by_transaction, named by PostgreSQL.
        assert "_transaction_id_position_idx" in plan, plan
