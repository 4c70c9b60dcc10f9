"""Projecting everything in the store, as the tests need it."""

from __future__ import annotations

import asyncio
import time

from services import event_store
from services.infra.database import Connection
from services.projector.projection import PROJECTION
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
        if await event_store.caught_up(db, PROJECTION):
            return applied
        if time.monotonic() > deadline:
            raise TimeoutError("the projection did not reach the head of the store")
        await asyncio.sleep(0.05)
