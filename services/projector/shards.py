"""The projection split by organization: which shards a store has, and changing the split.

With `METERING_PROJECTOR_SHARDS=N`, the usage projection is N shards
(`event_store.Shard`): each organization's events fall in one of them, each
shard has its own tracking record (`usage/0-of-N` …) and is projected by
whichever projector process holds its lock. Batches of different shards run
side by side: the read models are per organization, so they never touch the
same rows.

The layout is the set of tracking records. A projector refuses to start on a
store whose records are for another number of shards (`claim`): it would
project what another layout already projected. `reshard` changes the number,
with every projector stopped: it brings each shard to the same point T (the
furthest checkpoint, projecting the shards behind it up to T and no further),
then replaces the records with M records at T. Every event up to T is then in
the read models, whatever the layout, so the new shards start from T.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from services import event_store
from services.event_store import LayoutMismatch, Shard, Tracking
from services.infra import database
from services.infra.database import Connection
from services.projector.projection import (
    BATCH_LOCK,
    DURABLE_COMMIT,
    PROJECTION,
    prepare_connection,
)
from services.projector.quarantine import project_next


class ProjectorRunning(Exception):
    """A projector process holds a shard: the layout cannot change under it."""


@dataclass(frozen=True)
class ReshardReport:
    shards_before: int
    shards_after: int
    at: Tracking
    """Where every new shard starts: the furthest checkpoint of the old layout."""
    caught_up: int
    """Events projected to bring the old shards to that point."""


def lock_key(checkpoint: str) -> int:
    """The session-level advisory lock held by the process that projects `checkpoint`."""
    return zlib.crc32(f"metering.projection.{checkpoint}".encode())


def names(projection: str, count: int) -> list[str]:
    return [shard.checkpoint(projection) for shard in Shard.layout(count)]


async def claim(connection: Connection, count: int, projection: str = PROJECTION) -> None:
    """Check that the store is split in `count` shards; on a fresh store, record that it is.

    Raises LayoutMismatch, with what to do, when the store's layout is another.
    """
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", BATCH_LOCK)
        stored = await event_store.checkpoints(connection, projection)
        expected = names(projection, count)
        if not stored:
            for name in expected:
                await event_store.save_tracking(connection, name, Tracking.start())
        elif sorted(stored) != sorted(expected):
            raise LayoutMismatch(
                f"the store's {projection} projection is split in {len(stored)} shard(s)"
                f" ({', '.join(stored)}), this projector is set to {count}"
                f" (METERING_PROJECTOR_SHARDS): stop every projector and run"
                f" `metering projector reshard {count}`, or set it to {len(stored)}"
            )


async def reshard(
    database_url: str, count: int, *, batch_size: int = 5000, projection: str = PROJECTION
) -> ReshardReport:
    """Split `projection` in `count` shards; every projector must be stopped."""
    if count < 1:
        raise ValueError("a projection has at least one shard")
    connection = await database.connect(database_url)
    try:
        old = await event_store.layout(connection, projection)
        for name in {*names(projection, len(old)), *names(projection, count)}:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(name)):
                raise ProjectorRunning(
                    f"a projector is running {name}: stop every projector, then reshard"
                )
        await prepare_connection(connection)
        checkpoints = [
            await event_store.read_tracking(connection, shard.checkpoint(projection))
            for shard in old
        ]
        target = max(checkpoints)
        caught_up = 0
        for shard in old:
            while batch := await project_next(
                connection, batch_size, projection, shard=shard, until=target
            ):
                caught_up += batch.events
        async with connection.transaction():
            await connection.execute(DURABLE_COMMIT)
            await connection.execute("SELECT pg_advisory_xact_lock($1)", BATCH_LOCK)
            for shard in old:
                await event_store.delete_tracking(connection, shard.checkpoint(projection))
            for name in names(projection, count):
                await event_store.save_tracking(connection, name, target)
    finally:
        await connection.close()
    return ReshardReport(len(old), count, target, caught_up)
