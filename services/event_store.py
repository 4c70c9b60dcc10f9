"""The event store: every question about the log, asked in one place.

The `events` table is the source of truth (DESIGN.md). Ingest appends to it
(`services/ingest/recorder.py`: writing stays with the writer); everything that
reads it in order or asks where someone is in it comes here: the next batch in
commit order, the channel that announces new events, each projection's tracking
record (its checkpoint), the head, the lag, how long a projection has stalled,
and whether it has caught up. The shape follows eventsourcing's recorders
(`select_notifications`, `max_notification_id`, `max_tracking_id`).

Why commit order: positions come from a sequence, allocated when a row is
inserted and visible only when its transaction commits. With several writers,
position 12 can become visible after position 13, so "everything after the
highest position seen" would skip 12 for good. Readers therefore go in
(transaction id, position) order and only up to the oldest transaction still
running (`HIGH_WATER`): every transaction below it has finished, so nothing can
appear below that mark later. This is the approach of Marten and of
eventsourcing's PostgreSQL recorder, which take the snapshot's xmin.

Transaction ids are cluster-wide, so the snapshot's xmin is held back by a long
transaction in any database of the cluster, although only this database's can
add events. The mark therefore skips the running transactions that are known to
belong to another database (their backend is in `pg_stat_activity` with another
`datname`, or they are prepared there). A transaction it cannot place (one that
ended between the snapshot and the activity read, or whose backend the role may
not see: grant `pg_read_all_stats`) still holds the mark: projections may lag,
they never skip. What remains that holds it: this database's own long
transactions, and subtransaction ids of another database's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.infra.database import Connection

EVENTS_CHANNEL = "metering_events"
"""LISTEN/NOTIFY channel told about every commit that adds events."""


@dataclass(frozen=True, order=True)
class Tracking:
    """A projection's place in the store: the last (transaction id, position) it applied."""

    transaction_id: int
    position: int

    @classmethod
    def start(cls) -> Tracking:
        return cls(0, 0)


END_OF_TIME = Tracking(2**62, 2**63 - 1)
"""Beyond every event: the upper bound of a read that has none."""


@dataclass(frozen=True)
class Shard:
    """One of `count` parts of the store, split by organization (`SHARD_OF`).

    An organization's events all fall in one shard, and the read models are
    per organization (DESIGN: ordering is per organization), so each shard can be
    projected by its own process, with its own checkpoint, beside the others.
    """

    index: int = 0
    count: int = 1

    def checkpoint(self, projection: str) -> str:
        """The shard's tracking record: the projection's own name when there is one shard."""
        if self.count == 1:
            return projection
        return f"{projection}/{self.index}-of-{self.count}"

    @classmethod
    def layout(cls, count: int) -> list[Shard]:
        return [cls(index, count) for index in range(count)]

    @classmethod
    def parse(cls, checkpoint: str, projection: str) -> Shard:
        """The shard whose tracking record is named `checkpoint`."""
        if checkpoint == projection:
            return WHOLE
        found = re.fullmatch(re.escape(projection) + r"/(\d+)-of-(\d+)", checkpoint)
        if found is None or int(found[1]) >= int(found[2]):
            raise LayoutMismatch(f"{checkpoint!r} is no shard of {projection}")
        return cls(int(found[1]), int(found[2]))


class LayoutMismatch(Exception):
    """The projection's tracking records are for another number of shards."""


WHOLE = Shard()
"""The whole store: one shard."""


@dataclass(frozen=True)
class Copied:
    """What `copy_next_batch` read: where the projection now stands, and its events."""

    end: Tracking
    """The last event read past: the batch's last one, or another shard's after it."""
    events: int


@dataclass(frozen=True)
class Lag:
    """How far a projection is behind the head of the store."""

    positions: int
    """Positions between the store's head and the checkpoint."""
    oldest_waiting_s: float
    """Age of the oldest event not yet projected (0 when none waits)."""


NOTIFY_APPENDED = "SELECT pg_notify($1, '')"

HIGH_WATER = """(
    SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
    FROM pg_snapshot_xip(pg_current_snapshot()) AS x
    WHERE (x::text::bigint % 4294967296)::text::xid NOT IN (
        SELECT backend_xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND datname <> current_database()
        UNION ALL
        SELECT transaction FROM pg_prepared_xacts WHERE database <> current_database()))"""
"""The oldest running transaction that may add events here (its xid8, or the snapshot's
xmax when none runs): every event below it is committed or never will be."""

HIGH_WATER_NOW = f"SELECT {HIGH_WATER}::text::bigint"

SHARD_OF = "mod(hashtext({organization})::bigint + 2147483648, {count})"
"""Which of `count` shards an organization belongs to (0 to count - 1), in SQL."""

COPY_NEXT_BATCH = f"""
INSERT INTO projector_batch
SELECT position, transaction_id::text::bigint, source, id, type, organization_id, time, data,
       recorded_at
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
  AND (transaction_id, position) <= ($3::text::xid8, $4)
  AND ($5 = 1 OR {SHARD_OF.format(organization="organization_id", count="$5")} = $6)
ORDER BY events.transaction_id, events.position  -- qualified: the index order, not the output cast
LIMIT $7
"""

LAST_COPIED = """
SELECT transaction_id, position FROM projector_batch
ORDER BY transaction_id DESC, position DESC LIMIT 1
"""

# A shard's batch passes over the other shards' events: its checkpoint moves to the last
# event it passed, so an idle shard does not scan the same range again (one index probe).
LAST_PASSED = """
SELECT transaction_id::text::bigint, position FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
  AND (transaction_id, position) <= ($3::text::xid8, $4)
ORDER BY transaction_id DESC, position DESC LIMIT 1
"""

SHARD_OF_EVENT = (
    f"SELECT {SHARD_OF.format(organization='organization_id', count='$2')}"
    " FROM events WHERE position = $1"
)

LAYOUT = """
SELECT projection FROM projection_checkpoints
WHERE projection = $1 OR projection LIKE $1 || '/%'
ORDER BY projection
"""

READ_TRACKING = """
SELECT transaction_id::text::bigint AS transaction_id, position
FROM projection_checkpoints WHERE projection = $1
"""

SAVE_TRACKING = """
INSERT INTO projection_checkpoints (projection, transaction_id, position)
VALUES ($1, $2::text::xid8, $3)
ON CONFLICT (projection) DO UPDATE
SET transaction_id = excluded.transaction_id, position = excluded.position, updated_at = now()
"""

DELETE_TRACKING = "DELETE FROM projection_checkpoints WHERE projection = $1"

# The statement's snapshot is taken after its start: every event committed before
# statement_timestamp() is visible to it, so none past the checkpoint means all are in.
MARK_CAUGHT_UP = """
UPDATE projection_checkpoints c SET caught_up_at = statement_timestamp()
WHERE c.projection = $1
  AND (SELECT e.position FROM events e  -- the first in index order: a probe, not a bitmap
       WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)
       ORDER BY e.transaction_id, e.position LIMIT 1) IS NULL
"""

MAX_POSITION = "SELECT coalesce(max(position), 0) FROM events"

# The oldest unprojected event is the first after the checkpoint in index order:
# one index probe, not a scan of the backlog.
LAG = """
SELECT (SELECT max(position) FROM events) - c.position AS behind,
       extract(epoch FROM now() - (
           SELECT e.recorded_at FROM events e
           WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)
           ORDER BY e.transaction_id, e.position LIMIT 1))::float8 AS age
FROM projection_checkpoints c WHERE c.projection = $1
"""

# Both answer from index probes on events_by_transaction, never a scan of the
# store, and in the projector's own order (REVIEW E1, E2): with several
# writers, the checkpoint's position can be below the highest position while
# nothing waits.
STALLED_FOR = f"""
SELECT extract(epoch FROM now() - coalesce(c.updated_at, (
           SELECT e.recorded_at FROM events e
           ORDER BY e.transaction_id, e.position LIMIT 1)))::float8
FROM (SELECT $1::text AS projection) p
LEFT JOIN projection_checkpoints c USING (projection)
WHERE EXISTS (
    SELECT 1 FROM events e
    WHERE (e.transaction_id, e.position)
          > (coalesce(c.transaction_id, '0'::xid8), coalesce(c.position, 0))
      AND e.transaction_id < {HIGH_WATER})
"""

CAUGHT_UP = """
SELECT NOT EXISTS (
    SELECT 1 FROM events e
    WHERE (e.transaction_id, e.position) > (
        coalesce((SELECT transaction_id FROM projection_checkpoints WHERE projection = $1),
                 '0'::xid8),
        coalesce((SELECT position FROM projection_checkpoints WHERE projection = $1), 0)))
"""


async def announce_appended(connection: Connection) -> None:
    """Tell listeners that events were added; delivered when the transaction commits."""
    await connection.execute(NOTIFY_APPENDED, EVENTS_CHANNEL)


async def listen(connection: asyncpg.Connection, on_appended: Callable[[], None]) -> None:
    """Call `on_appended` whenever a commit adds events (until the connection closes)."""

    def callback(*_: Any) -> None:
        on_appended()

    await connection.add_listener(EVENTS_CHANNEL, callback)


async def copy_next_batch(
    connection: Connection,
    after: Tracking,
    limit: int,
    shard: Shard = WHOLE,
    until: Tracking = END_OF_TIME,
) -> Copied | None:
    """Copy up to `limit` committed events of `shard` after `after`, up to `until`, in
    commit order, into projector_batch; None when no event is past `after`.

    Only events below the high-water mark are read: none can appear before them later.
    """
    high_water = int(await connection.fetchval(HIGH_WATER_NOW))
    bound = min(until, Tracking(high_water - 1, END_OF_TIME.position))
    if bound <= after:
        return None
    status = await connection.execute(
        COPY_NEXT_BATCH,
        str(after.transaction_id),
        after.position,
        str(bound.transaction_id),
        bound.position,
        shard.count,
        shard.index,
        limit,
    )
    events = int(status.rsplit(" ", 1)[1])
    if events == limit or shard.count == 1:
        last = await connection.fetchrow(LAST_COPIED)
    else:
        last = await connection.fetchrow(
            LAST_PASSED,
            str(after.transaction_id),
            after.position,
            str(bound.transaction_id),
            bound.position,
        )
    return None if last is None else Copied(Tracking(last[0], last[1]), events)


async def read_tracking(connection: Connection, projection: str) -> Tracking:
    """The projection's checkpoint; the start of the store when it has none."""
    row = await connection.fetchrow(READ_TRACKING, projection)
    return Tracking(row["transaction_id"], row["position"]) if row else Tracking.start()


async def save_tracking(connection: Connection, projection: str, tracking: Tracking) -> None:
    """Move the projection's checkpoint; call it in the transaction that updates its views."""
    await connection.execute(
        SAVE_TRACKING, projection, str(tracking.transaction_id), tracking.position
    )


async def mark_caught_up(connection: Connection, projection: str) -> None:
    """Record now as the projection's `caught_up_at` if no stored event is past its
    checkpoint (one index probe per partition); else leave the last time it was."""
    await connection.execute(MARK_CAUGHT_UP, projection)


async def checkpoints(connection: Connection | asyncpg.Pool, projection: str) -> list[str]:
    """The tracking records of `projection` and of its shards, as stored (none before
    the projection has ever been run)."""
    return [row[0] for row in await connection.fetch(LAYOUT, projection)]


async def layout(connection: Connection | asyncpg.Pool, projection: str) -> list[Shard]:
    """The shards `projection` is split in, from their tracking records (one before any)."""
    names = await checkpoints(connection, projection)
    counts = {Shard.parse(name, projection).count for name in names}
    if len(counts) > 1:
        raise LayoutMismatch(f"{projection} has tracking records of several layouts: {counts}")
    return Shard.layout(counts.pop() if counts else 1)


async def shard_of_event(connection: Connection, position: int, count: int) -> Shard:
    """The shard of `count` that the event at `position` belongs to."""
    return Shard(int(await connection.fetchval(SHARD_OF_EVENT, position, count) or 0), count)


async def delete_tracking(connection: Connection, projection: str) -> None:
    """Forget a tracking record (a shard of a layout that is replaced)."""
    await connection.execute(DELETE_TRACKING, projection)


async def max_position(connection: Connection | asyncpg.Pool) -> int:
    """The highest position in the store (0 when empty)."""
    return int(await connection.fetchval(MAX_POSITION))


async def lag(connection: Connection, projection: str) -> Lag | None:
    """How far `projection` is behind; None before its first checkpoint."""
    row = await connection.fetchrow(LAG, projection)
    if row is None:
        return None
    return Lag(max(row["behind"] or 0, 0), row["age"] or 0.0)


async def stalled_for_s(connection: Connection | asyncpg.Pool, projection: str) -> float | None:
    """Seconds since `projection` last moved while events wait for it; None when none wait."""
    value = await connection.fetchval(STALLED_FOR, projection)
    return None if value is None else float(value)


async def all_caught_up(connection: Connection | asyncpg.Pool, projection: str) -> bool:
    """Whether every shard of `projection` has caught up (`caught_up`)."""
    for shard in await layout(connection, projection):
        if not await caught_up(connection, shard.checkpoint(projection)):
            return False
    return True


async def stalled_longest_s(connection: Connection | asyncpg.Pool, projection: str) -> float | None:
    """The longest `stalled_for_s` of `projection`'s shards; None when none is stalled."""
    stalled = [
        seconds
        for shard in await layout(connection, projection)
        if (seconds := await stalled_for_s(connection, shard.checkpoint(projection))) is not None
    ]
    return max(stalled, default=None)


async def caught_up(connection: Connection | asyncpg.Pool, projection: str) -> bool:
    """Whether no committed event is after `projection`'s checkpoint (in commit order)."""
    return bool(await connection.fetchval(CAUGHT_UP, projection))
