"""Reading the event store in commit order, without ever skipping an event.

Positions come from a sequence: allocated when a row is inserted, visible only
when its transaction commits. With several writers, position 12 can become
visible after position 13, so "everything after the highest position seen"
would skip 12 for good. Instead, the projector reads in (transaction id,
position) order and only up to the oldest transaction still running:
`pg_snapshot_xmin(pg_current_snapshot())`. Every transaction below that id
has finished, so the events at or below the high-water mark can no longer
change, and none can appear below it later. This is the approach of
PostgreSQL-backed event stores such as Marten and eventsourcing's
PostgreSQL recorder. The cost: a long-running transaction anywhere in the
cluster (transaction ids are cluster-wide, so other databases count too)
holds the mark back, so projections lag (they never skip).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.infra.database import Connection


@dataclass(frozen=True, order=True)
class Tracking:
    """A projection's place in the store: the last (transaction id, position) it applied."""

    transaction_id: int
    position: int

    @classmethod
    def start(cls) -> Tracking:
        return cls(0, 0)


LOAD_BATCH = """
INSERT INTO projector_batch
SELECT position, transaction_id::text::bigint, source, id, type, organization_id, time, data,
       recorded_at
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY events.transaction_id, events.position  -- qualified: the index order, not the output cast
LIMIT $3
"""


# Subscription events change how later events are counted (their period, their
# day's time zone). A batch therefore holds at most one of them, at its start,
# so that every event sees exactly the subscriptions that precede it, however
# the history is cut into batches (a rebuild must equal the live models).
CUT_AT_SECOND_SUBSCRIPTION = """
DELETE FROM projector_batch b
USING (
    SELECT transaction_id, position FROM projector_batch
    WHERE type LIKE 'com.metering.subscription.%'
      AND (transaction_id, position) > (
          SELECT transaction_id, position FROM projector_batch
          ORDER BY transaction_id, position LIMIT 1)
    ORDER BY transaction_id, position LIMIT 1
) cut
WHERE (b.transaction_id, b.position) >= (cut.transaction_id, cut.position)
"""


async def load_batch(connection: Connection, after: Tracking, limit: int) -> Tracking | None:
    """Copy the next committed events after `after` into projector_batch.

    Returns where the batch ends, or None when nothing new is safely visible.
    """
    await connection.execute(LOAD_BATCH, str(after.transaction_id), after.position, limit)
    await connection.execute(CUT_AT_SECOND_SUBSCRIPTION)
    row = await connection.fetchrow(
        "SELECT transaction_id, position FROM projector_batch"
        " ORDER BY transaction_id DESC, position DESC LIMIT 1"
    )
    if row is None:
        return None
    return Tracking(row["transaction_id"], row["position"])
