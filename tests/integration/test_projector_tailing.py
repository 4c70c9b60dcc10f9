"""The projector never skips an event, even when writers commit out of position order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg

from services.projector.projection import project_batch
from tests.support.events import module_execution
from tests.support.store import store


async def naive_tail(db: asyncpg.Connection, after: int) -> tuple[list[int], int]:
    """What a reader that trusts positions would do: everything above the highest seen."""
    rows = await db.fetch(
        "SELECT position FROM events WHERE position > $1 ORDER BY position", after
    )
    positions = [r["position"] for r in rows]
    return positions, max(positions, default=after)


async def projected_events(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM module_executions"))


async def test_an_early_position_committed_late_is_projected_but_naive_tailing_skips_it(
    db: asyncpg.Connection, database_url: str
) -> None:
    slow = await asyncpg.connect(database_url)
    fast = await asyncpg.connect(database_url)
    try:
        slow_tx = slow.transaction()
        await slow_tx.start()
        await store(slow, [module_execution("org-1", 1, Decimal("1"))])  # lower position
        await store(fast, [module_execution("org-1", 2, Decimal("2"))], first_offset=1)

        naive_seen, naive_mark = await naive_tail(db, 0)
        first = await project_batch(db, 100)
        await slow_tx.commit()
        naive_later, _ = await naive_tail(db, naive_mark)
        while await project_batch(db, 100) is not None:
            pass
    finally:
        await slow.close()
        await fast.close()

    assert first is None, "the projector must wait while a lower position is uncommitted"
    assert len(naive_seen) == 1
    assert naive_later == [], "naive tailing never sees the late-committed lower position"
    assert await projected_events(db) == 2
    assert await db.fetchval("SELECT sum(credits_used) FROM runs") == Decimal("3")


WRITERS, TRANSACTIONS, PER_TRANSACTION = 4, 25, 8
TOTAL = WRITERS * TRANSACTIONS * PER_TRANSACTION


async def concurrent_writers(database_url: str, seed: int) -> None:
    """Four writers, each holding its positions for a random while before committing."""
    rng = random.Random(seed)

    async def writer(w: int) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            for t in range(TRANSACTIONS):
                base = (w * TRANSACTIONS + t) * PER_TRANSACTION
                events = [
                    module_execution(f"org-{w}", base + k, Decimal(base + k) / 1000)
                    for k in range(PER_TRANSACTION)
                ]
                async with conn.transaction():
                    await store(conn, events, first_offset=base)
                    await asyncio.sleep(rng.random() * 0.05)
        finally:
            await conn.close()

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


async def tail_while_writing(database_url: str, read: Callable[[], Awaitable[int]]) -> int:
    """Run the writers while `read` polls; returns how many events `read` applied."""
    done = asyncio.Event()

    async def reader() -> int:
        applied = 0
        while True:
            n = await read()
            applied += n
            if n == 0 and done.is_set():
                return applied
            if n == 0:
                await asyncio.sleep(0.002)

    reading = asyncio.create_task(reader())
    await concurrent_writers(database_url, seed=17)
    done.set()
    return await reading


async def test_four_concurrent_writers_with_random_delays_are_all_projected_once(
    db: asyncpg.Connection, database_url: str
) -> None:
    async def read() -> int:
        result = await project_batch(db, 13)
        return 0 if result is None else result.events

    applied = await tail_while_writing(database_url, read)

    assert applied == TOTAL
    assert await projected_events(db) == TOTAL
    expected = sum(Decimal(i) / 1000 for i in range(TOTAL))
    assert await db.fetchval("SELECT sum(credits_used) FROM billing_periods") == expected


async def test_the_same_writers_make_naive_max_position_tailing_lose_events(
    db: asyncpg.Connection, database_url: str
) -> None:
    mark = 0

    async def read() -> int:
        nonlocal mark
        positions, mark = await naive_tail(db, mark)
        return len(positions)

    applied = await tail_while_writing(database_url, read)

    assert await db.fetchval("SELECT count(*) FROM events") == TOTAL
    assert applied < TOTAL, "naive tailing saw every event this time; the workload is too tame"
