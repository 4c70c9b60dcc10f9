"""Rebuilding the read models from position 0, beside the live ones, then swapping.

The new tables are built in a schema of their own while the live projector and
the API go on using the old ones. The swap is one short transaction: it waits
for the live projector's current batch (the batch lock), applies what arrived
meanwhile, and moves the old tables out and the new ones in. Readers wait for
that transaction at most; they never see a half-built model. The statements
are in `sql/rebuild.sql`.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from services import event_store
from services.infra import database
from services.projector.projection import BATCH_LOCK, PROJECTION, prepare_connection, queries
from services.projector.quarantine import project_next

REBUILD_SCHEMA = "projection_rebuild"
REBUILD_LOCK = zlib.crc32(b"metering.projection.rebuild")


class RebuildRunning(Exception):
    """Another rebuild of the same database holds the rebuild lock."""


@dataclass(frozen=True)
class RebuildReport:
    events: int
    seconds: float
    schema: str
    swapped: bool


async def rebuild(
    database_url: str,
    *,
    batch_size: int = 20_000,
    swap: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Project every event into fresh tables; with `swap`, make them the live ones.

    `progress(done, total)` is called after each batch. Without `swap`, the new
    tables stay in the returned schema (for comparing them with the live ones)
    until the next rebuild.
    """
    started = time.perf_counter()
    sql = queries("rebuild.sql")
    connection = await database.connect(database_url)
    try:
        if not await connection.fetchval(sql["rebuild_lock"], REBUILD_LOCK):
            raise RebuildRunning("another rebuild of this database is running")
        await connection.execute(sql["drop_leftovers"])
        await connection.execute(sql["create_tables_beside"])
        await connection.execute(sql["build_beside"])
        await prepare_connection(connection)
        total = int(await connection.fetchval(sql["count_events"]))
        done = 0
        while (batch := await project_next(connection, batch_size)) is not None:
            done += batch.events
            if progress is not None:
                progress(done, max(total, done))
        if swap:
            done += await _swap(connection)
    finally:
        await connection.close()
    return RebuildReport(done, time.perf_counter() - started, REBUILD_SCHEMA, swap)


async def _swap(connection: asyncpg.Connection) -> int:
    sql = queries("rebuild.sql")
    caught_up = 0
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", BATCH_LOCK)
        while (batch := await project_next(connection, 50_000)) is not None:
            caught_up += batch.events
        rebuilt = await event_store.read_tracking(connection, PROJECTION)
        await connection.execute(sql["swap_tables"])
        await connection.execute(sql["back_to_public"])
        for shard in await event_store.layout(connection, PROJECTION):
            await event_store.save_tracking(connection, shard.checkpoint(PROJECTION), rebuilt)
        await connection.execute(sql["release_live_quarantine"])
        await connection.execute(sql["quarantine_from_rebuild"])
        await connection.execute(sql["drop_rebuilt"])
    await connection.execute(sql["drop_retired"])
    return caught_up
