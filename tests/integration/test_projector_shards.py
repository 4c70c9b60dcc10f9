"""The projection split by organization (issue 13, scale out): shards, processes, resharding.

The read models of any interleaving of shards equal the oracle's
(test_order_independence.py); here: an idle shard passes over the others'
events, two processes share the shards and one takes the other's over when it
is killed, and a store goes from 1 shard to 2 and back with every total exact.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from schemas import TypedEvent
from services import event_store
from services.event_store import LayoutMismatch, Shard
from services.infra import database
from services.projector.projection import PROJECTION, prepare_connection
from services.projector.quarantine import project_next, shard_checkpoint
from services.projector.shards import ProjectorRunning, claim, lock_key, reshard
from tests.support.events import module_execution
from tests.support.history import Expected, history
from tests.support.processes import ProjectorProcess
from tests.support.projecting import project_everything
from tests.support.store import store
from tests.support.waiting import eventually


async def assert_totals(db: asyncpg.Connection, expected: Expected) -> None:
    used = await db.fetch("SELECT organization_id, period_start, credits_used FROM billing_periods")
    assert {(r[0], r[1]): r[2] for r in used if r[2]} == dict(expected.period_used)
    assert await db.fetchval("SELECT count(*) FROM module_executions") == expected.executions


async def store_in_chunks(db: asyncpg.Connection, events: list[TypedEvent], first: int = 0) -> None:
    for i in range(0, len(events), 1000):
        await store(db, events[i : i + 1000], first_offset=first + i)


async def test_an_idle_shard_moves_past_the_other_shards_events(db: asyncpg.Connection) -> None:
    await claim(db, 2)
    await prepare_connection(db)
    await store(db, [module_execution("org-1", n, Decimal("0.5")) for n in range(300)])
    last = int(await db.fetchval("SELECT max(position) FROM events"))
    own = await event_store.shard_of_event(db, last, 2)
    other = Shard(1 - own.index, 2)
    assert await shard_checkpoint(db, last, PROJECTION) == own.checkpoint(PROJECTION)

    passed = await project_next(db, 100, shard=other)
    assert passed is not None
    assert (passed.events, passed.tracking.position) == (0, last)
    assert await project_next(db, 100, shard=other) is None
    assert not await event_store.all_caught_up(db, PROJECTION)
    assert await event_store.stalled_longest_s(db, PROJECTION) is not None

    batches = []
    while (batch := await project_next(db, 100, shard=own)) is not None:
        batches.append(batch.events)
    assert batches == [100, 100, 100]
    assert await event_store.all_caught_up(db, PROJECTION)
    assert await event_store.stalled_longest_s(db, PROJECTION) is None
    assert await db.fetchval("SELECT sum(credits_used) FROM runs") == Decimal(150)


async def test_a_store_goes_from_one_shard_to_two_and_back_with_every_total_exact(
    db: asyncpg.Connection, database_url: str
) -> None:
    events, expected = history(seed=5, events=3000, organizations=8)
    first, second, third = events[:1000], events[1000:2000], events[2000:]
    await claim(db, 1)
    await prepare_connection(db)
    await store_in_chunks(db, first)
    await project_everything(db, 1000)
    projected = await event_store.read_tracking(db, PROJECTION)
    await store_in_chunks(db, second, 1000)

    report = await reshard(database_url, 2)
    assert (report.shards_before, report.shards_after) == (1, 2)
    assert (report.at, report.caught_up) == (projected, 0)
    assert await event_store.checkpoints(db, PROJECTION) == ["usage/0-of-2", "usage/1-of-2"]
    with pytest.raises(LayoutMismatch, match="reshard 1"):
        await claim(db, 1)

    while await project_next(db, 300, shard=Shard(0, 2)) is not None:
        pass  # shard 1 stays behind: the reshard back must bring it up first
    await store_in_chunks(db, third, 2000)
    holder = await database.connect(database_url)
    try:
        await holder.fetchval("SELECT pg_advisory_lock($1)", lock_key("usage/1-of-2"))
        with pytest.raises(ProjectorRunning, match="usage/1-of-2"):
            await reshard(database_url, 1)
    finally:
        await holder.close()

    report = await reshard(database_url, 1)
    assert (report.shards_before, report.shards_after) == (2, 1)
    assert report.caught_up > 0
    assert await event_store.checkpoints(db, PROJECTION) == ["usage"]
    await claim(db, 1)
    await project_everything(db, 1000)
    await assert_totals(db, expected)


def active(process: ProjectorProcess, index: int) -> float:
    return process.metrics().get(f'projector_active{{projection="usage/{index}-of-2"}}', 0)


def holds(process: ProjectorProcess) -> list[int]:
    return [index for index in range(2) if active(process, index) == 1]


async def test_two_processes_share_the_shards_and_one_takes_over_a_killed_ones_shard(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    events, expected = history(seed=13, events=8000, organizations=12)
    processes = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        processes.append(
            ProjectorProcess(
                database_url, tmp_path / name, batch_size=50, shards=2, lock_retry_s=0.3
            )
        )
    first, second = processes
    try:
        first.start()
        await eventually(lambda: holds(first) == [0, 1])  # alone, it takes both
        second.start()
        await eventually(lambda: len(holds(first)) == 1 and len(holds(second)) == 1)
        [killed] = holds(second)

        await store_in_chunks(db, events[:6000])
        name = f"usage/{killed}-of-2"
        await eventually(
            lambda: db.fetchval(
                "SELECT position > 0 FROM projection_checkpoints WHERE projection = $1", name
            )
        )
        second.kill()
        await store_in_chunks(db, events[6000:], 6000)

        await eventually(lambda: holds(first) == [0, 1], timeout_s=30)
        await eventually(lambda: event_store.all_caught_up(db, PROJECTION), timeout_s=120)
        await assert_totals(db, expected)
    finally:
        for process in processes:
            process.stop()


async def test_a_projector_set_to_another_number_of_shards_refuses_to_start(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    await claim(db, 1)
    await store(db, [module_execution("org-1", 1, Decimal("1"))])
    process = ProjectorProcess(database_url, tmp_path, shards=2)
    try:
        with contextlib.suppress(RuntimeError):  # refusing, it may exit before its port opens
            process.start()
        await eventually(lambda: not process.alive(), timeout_s=30)
        assert process.stop() == 2
        assert "metering projector reshard 2" in process.log()
        assert await event_store.checkpoints(db, PROJECTION) == ["usage"]
        assert await db.fetchval("SELECT count(*) FROM runs") == 0
    finally:
        process.stop()
