"""Projecting everything in the store, as the tests need it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from schemas import TypedEvent
from services import event_store
from services.infra import database
from services.infra.database import Connection
from services.projector.projection import PROJECTION, prepare_connection
from services.projector.quarantine import project_next


async def project_everything(db: Connection, batch: int, timeout_s: float = 120) -> int:
    """Apply batches until the checkpoint reaches the store's head; returns the events applied.

    "Nothing to do" is not the end: the high-water mark waits for every transaction
    running in the cluster, including other databases' (a benchmark, say).
    """
    applied = 0
    deadline = time.monotonic() + timeout_s
    while True:
        result = await project_next(db, batch)
        if result is not None:
            applied += result.events
            continue
        if await event_store.all_caught_up(db, PROJECTION):
            return applied
        if time.monotonic() > deadline:
            raise TimeoutError("the projection did not reach the head of the store")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def arrived_one_by_one(
    url: str, events: list[TypedEvent], batch: int = 100
) -> AsyncIterator[Connection]:
    """A connection to `url` once `events` were stored one at a time, in this order,
    each projected before the next arrives."""
    from tests.support.store import store

    db = await database.connect(url)
    try:
        await prepare_connection(db)
        for offset, event in enumerate(events):
            await store(db, [event], offset)
            await project_everything(db, batch)
        yield db
    finally:
        await db.close()
