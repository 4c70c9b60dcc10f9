"""Reconciliation's partition and totals checks on a real store: a skipped offset is a
gap, a redelivered range counts once, a total that disagrees with its parts is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from services.ingest.recorder import append, ranges_of
from services.query_api import reconciliation
from tests.integration.test_event_store_append import event
from tests.support.history import history
from tests.support.projecting import project_everything
from tests.support.store import store

HOUR = timedelta(hours=1)


async def window(db: asyncpg.Connection) -> list[reconciliation.PartitionLine]:
    now = datetime.now(UTC)
    return await reconciliation.partitions(db, now - HOUR, now + HOUR)


async def test_an_offset_never_received_is_a_gap(db: asyncpg.Connection) -> None:
    for offsets in (range(5), range(6, 10)):  # offset 5 skipped
        batch = [event(f"e{o}", o) for o in offsets]
        await append(db, batch, [], ranges_of(e.record.origin for e in batch))

    [line] = await window(db)

    assert (line.topic, line.partition, line.first_offset, line.last_offset) == ("events", 0, 0, 9)
    assert (line.received, line.stored, line.gaps, line.unaccounted) == (9, 9, [(5, 5)], [])
    assert line.missing == 1
    assert not line.ok


async def test_a_range_received_again_counts_once(db: asyncpg.Connection) -> None:
    first = [event(f"e{o}", o) for o in range(5)]
    await append(db, first, [], ranges_of(e.record.origin for e in first))
    again = [event(f"e{o}", o) for o in range(7)]  # redelivered, with two more
    await append(db, again, [], ranges_of(e.record.origin for e in again))

    [line] = await window(db)

    assert (line.received, line.stored, line.duplicates, line.gaps) == (7, 7, 0, [])
    assert line.ok


async def test_a_record_whose_outcome_is_gone_is_unaccounted_and_named(
    db: asyncpg.Connection,
) -> None:
    batch = [event(f"e{o}", o) for o in range(4)]
    await append(db, batch, [], ranges_of(e.record.origin for e in batch))
    await db.execute("DELETE FROM events WHERE kafka_offset = 2")

    [line] = await window(db)

    assert (line.received, line.stored, line.unaccounted_count, line.unaccounted) == (4, 3, 1, [2])
    assert not line.ok


async def test_totals_that_disagree_with_their_parts_are_named(db: asyncpg.Connection) -> None:
    events, _ = history(seed=5, events=500)
    await store(db, events)
    await project_everything(db, 250)
    assert await reconciliation.totals(db) == []

    run = await db.fetchrow(
        "SELECT organization_id, run_id, scenario_id, credits_used FROM runs LIMIT 1"
    )
    assert run is not None
    await db.execute(
        "UPDATE runs SET credits_used = credits_used + 1 WHERE organization_id = $1"
        " AND run_id = $2",
        run["organization_id"],
        run["run_id"],
    )

    mismatches = await reconciliation.totals(db)
    # The run no longer equals its modules, and its scenario no longer its runs.
    assert [(m.level, m.organization_id, m.key) for m in mismatches] == [
        ("run", run["organization_id"], run["run_id"]),
        ("scenario", run["organization_id"], run["scenario_id"]),
    ]
    assert (mismatches[0].total, mismatches[0].parts) == (
        run["credits_used"] + Decimal(1),
        run["credits_used"],
    )
    assert await reconciliation.totals(db, "no-such-org") == []
