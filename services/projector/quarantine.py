"""The quarantine: an event the projection's SQL refuses is parked, and the projector goes on.

When a batch fails with an error that an event's content can cause (a data
exception or a constraint violation: SQLSTATE classes 22 and 23), the batch is
bisected: halves are projected until the one event that fails alone is found.
That event is parked in `projector_quarantine` with the error, the checkpoint
moves past it, and every other event, of every tenant, is projected as usual.
Any other error (a lost connection, a bug in our SQL) is raised: quarantining
would then park good events.

The same organization's later events are projected without the parked one.
The read models are a function of the set of events projected, whatever their
order (DESIGN: order independence), so replaying it later gives exactly the
numbers an in-order projection would have given; holding the tenant instead
would stop all of its usage for one event. Batches treat quarantined events as
not projected (batch_scope): a correction of a parked execution counts where
its own copy says until the execution is replayed, then moves.

`replay` projects a parked event again (after a fix); auto-purchase decisions
stay with the live projector's batches (the organization's next one decides).
`drop` leaves it out for good, with a reason, and a rebuild leaves it out too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services import event_store
from services.event_store import END_OF_TIME, WHOLE, Shard, Tracking
from services.infra.database import Connection, caused_by_data
from services.projector.projection import (
    BATCH_LOCK,
    PROJECTION,
    BatchResult,
    apply_batch,
    clear_batch,
    mark_changed,
    prepare_connection,
    project_batch,
    queries,
    scope,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parked:
    position: int
    organization_id: str
    source: str
    id: str
    type: str
    sqlstate: str
    error: str
    quarantined_at: datetime
    released_at: datetime | None
    released_how: str | None
    release_reason: str | None


class StillArchived(Exception):
    """A held event still reaches back to a month archived out of the store."""


class NotHeld(Exception):
    """No event at that position is held in quarantine."""


async def project_next(
    connection: Connection,
    limit: int,
    projection: str = PROJECTION,
    *,
    auto_purchase: bool = False,
    notify: bool = False,
    shard: Shard = WHOLE,
    until: Tracking = END_OF_TIME,
    ages: bool = True,
    versions: bool = True,
) -> BatchResult | None:
    """Project the next batch of `shard` (project_batch); if an event in it is refused,
    isolate it and park it.

    Returns the batch applied (its `events` count may be smaller than `limit`
    while a refused event is being isolated; `quarantined` is 1 when one was
    parked), or None when caught up.
    """
    size = limit
    while True:
        try:
            return await project_batch(
                connection,
                size,
                projection,
                auto_purchase=auto_purchase,
                notify=notify,
                shard=shard,
                until=until,
                ages=ages,
                versions=versions,
            )
        except asyncpg.PostgresError as error:
            if not caused_by_data(error):
                raise
            if size > 1:
                size //= 2
                log.warning("a batch was refused (%s); trying %d events", error.sqlstate, size)
                continue
            return await _park_next(connection, shard.checkpoint(projection), shard, error)


async def _park_next(
    connection: Connection, checkpoint: str, shard: Shard, error: asyncpg.PostgresError
) -> BatchResult:
    """Park the one event after the checkpoint, which fails alone, and move past it."""
    statements = queries("quarantine.sql")
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock_shared($1)", BATCH_LOCK)
        after = await event_store.read_tracking(connection, checkpoint)
        await clear_batch(connection)
        await event_store.copy_next_batch(connection, after, 1, shard)
        row = await connection.fetchrow(
            statements["park"], str(error.sqlstate), str(error).replace("\x00", "")[:4000]
        )
        assert row is not None, "the failed event is gone from the store"
        end = event_store.Tracking(row["transaction_id"], row["position"])
        await event_store.save_tracking(connection, checkpoint, end)
    log.error(
        "quarantined event %s (%s/%s, organization %s): %s",
        row["position"],
        row["source"],
        row["id"],
        row["organization_id"],
        error,
    )
    return BatchResult(0, end, [], quarantined=1)


async def held(connection: Connection, *, everything: bool = False) -> list[Parked]:
    """The parked events, oldest first; with `everything`, released ones too."""
    rows = await connection.fetch(queries("quarantine.sql")["list"], everything)
    return [Parked(**dict(row)) for row in rows]


async def held_count(connection: Connection) -> int:
    """How many events are held in quarantine now."""
    return int(await connection.fetchval(queries("quarantine.sql")["count_held"]))


async def replay(connection: Connection, position: int, projection: str = PROJECTION) -> None:
    """Project a parked event now; raises the projection's error if it still fails."""
    statements = queries("quarantine.sql")
    await prepare_connection(connection)
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", BATCH_LOCK)
        await clear_batch(connection)
        if await connection.execute(statements["load_held"], position) != "INSERT 0 1":
            raise NotHeld(f"no event at position {position} is held in quarantine")
        checkpoint = await shard_checkpoint(connection, position, projection)
        await scope(connection, await event_store.read_tracking(connection, checkpoint))
        if not await connection.fetchval(statements["still_loaded"]):
            raise StillArchived(
                f"the event at position {position} reaches back to an archived month:"
                " restore it first (metering archive restore)"
            )
        await apply_batch(connection)
        await connection.execute(statements["release"], position, "replayed", None)
        await mark_changed(connection)


async def shard_checkpoint(connection: Connection, position: int, projection: str) -> str:
    """The tracking record of the shard that projects the event at `position`."""
    count = len(await event_store.layout(connection, projection))
    shard = await event_store.shard_of_event(connection, position, count)
    return shard.checkpoint(projection)


async def drop(connection: Connection, position: int, reason: str) -> None:
    """Leave a parked event out of the read models for good (a rebuild leaves it out too)."""
    status = await connection.execute(
        queries("quarantine.sql")["release"], position, "dropped", reason
    )
    if status != "UPDATE 1":
        raise NotHeld(f"no event at position {position} is held in quarantine")
