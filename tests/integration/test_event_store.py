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
