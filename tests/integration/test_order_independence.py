"""The read models are a function of the set of events, not of their arrival order.

One history (subscriptions arriving before and after the usage they govern, a
time zone change, a re-sent period, late purchases and corrections) is stored
in several random orders, in transactions of random sizes, and projected with
different batch sizes; every read model must come out identical, equal to a
rebuild, and equal to the Python oracle (REVIEW B1, G1; issue 10).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas import TypedEvent
from services import event_store
from services.event_store import Shard
from services.infra import database
from services.ingest.recorder import prepare_connection as prepare_recorder
from services.projector.projection import PROJECTION, READ_MODELS, prepare_connection
from services.projector.quarantine import project_next
from services.projector.rebuild import rebuild
from services.projector.shards import claim
from tests.support.billing_history import Expected, billing_history, expected_models
from tests.support.generated_history import History, expected, histories, read_models
from tests.support.projecting import arrived_one_by_one, project_everything
from tests.support.store import store

ORDER_FREE = {"module_executions": "event_position"}
"""Columns that name a store position, which depends on the arrival order by nature."""


async def snapshot(db: asyncpg.Connection, schema: str = "public") -> dict[str, list[str]]:
    """Every row of every read model, as sorted text, without position columns."""
    models = {}
    for table in READ_MODELS:
        columns = await db.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = $2 AND column_name <> $3"
            " ORDER BY ordinal_position",
            schema,
            table,
            ORDER_FREE.get(table, ""),
        )
        names = ", ".join(c["column_name"] for c in columns)
        rows = await db.fetch(f"SELECT ({names})::text AS row FROM {schema}.{table}")
        models[table] = sorted(r["row"] for r in rows)
    return models


async def project_in_order(
    url: str, events: list[TypedEvent], rng: random.Random, batch: int
) -> dict[str, list[str]]:
    db = await database.connect(url)
    try:
        await prepare_connection(db)
        await prepare_recorder(db)
        offset = 0
        while offset < len(events):
            size = rng.randint(1, 60)
            await store(db, events[offset : offset + size], first_offset=offset)
            offset += size
            if rng.random() < 0.3:  # project part of the way, as a live projector would
                await project_everything(db, batch)
        await project_everything(db, batch)
        return await snapshot(db)
    finally:
        await db.close()


def check_against_oracle(models: dict[str, list[str]], expected: Expected) -> None:
    def rows(table: str) -> list[tuple[str, ...]]:
        return [tuple(row.strip("()").split(",")) for row in models[table]]

    periods = {
        (r[0], datetime.fromisoformat(r[1].strip('"'))): (
            datetime.fromisoformat(r[2].strip('"')),
            Decimal(r[6]),
            Decimal(r[5]),
        )
        for r in rows("billing_periods")
    }
    assert periods == expected.periods
    days = {
        (r[0], date.fromisoformat(r[1])): Decimal(r[2]) for r in rows("organization_daily_usage")
    }
    assert days == expected.days
    scenarios = {
        (r[0], datetime.fromisoformat(r[1].strip('"')), r[2]): Decimal(r[3])
        for r in rows("scenario_period_usage")
    }
    assert scenarios == expected.scenario_periods


@pytest.mark.parametrize("seed", [1, 2])
async def test_any_arrival_order_gives_the_same_read_models_as_the_oracle(
    seed: int, new_database: Callable[[], str]
) -> None:
    events, periods = billing_history(seed)
    expected = expected_models(events, periods)
    rng = random.Random(seed)
    results = []
    for batch in (1_000, 7, 50, 3):
        shuffled = events[:]
        rng.shuffle(shuffled)
        url = new_database()
        results.append(await project_in_order(url, shuffled, rng, batch))

    for models in results[1:]:
        for table in READ_MODELS:
            assert models[table] == results[0][table], table
    check_against_oracle(results[0], expected)

    report = await rebuild(url, swap=False)
    connection = await database.connect(url)
    try:
        assert await snapshot(connection, report.schema) == results[-1]
    finally:
        await connection.close()


async def test_usage_projected_before_its_renewal_moves_to_the_renewed_period(
    db: asyncpg.Connection,
) -> None:
    # REVIEW B1: period A ends / B starts at 20:05:42Z; 7 credits at B+5 s are
    # projected before B's period_started arrives, 3 credits after it.
    from datetime import UTC, timedelta

    from tests.support.billing_history import Period, _subscription
    from tests.support.events import module_execution

    boundary = datetime(2026, 11, 24, 20, 5, 42, tzinfo=UTC)
    a = Period(boundary - timedelta(days=30), boundary, "UTC")
    b = Period(boundary, boundary + timedelta(days=30), "UTC")
    await store(db, [_subscription("org-1", a, "sub-a")])
    await store(
        db, [module_execution("org-1", 1, Decimal(7), when=boundary + timedelta(seconds=5))], 1
    )
    await project_everything(db, 100)
    await store(db, [_subscription("org-1", b, "sub-b")], 2)
    await store(
        db, [module_execution("org-1", 2, Decimal(3), when=boundary + timedelta(seconds=9))], 3
    )
    await project_everything(db, 100)

    rows = await db.fetch(
        "SELECT period_start, period_end, credits_used FROM billing_periods ORDER BY period_start"
    )
    assert [tuple(r) for r in rows] == [(a.start, a.end, Decimal(0)), (b.start, b.end, Decimal(10))]


async def reset(url: str) -> None:
    connection = await database.connect(url)
    try:
        tables = ["events", "event_keys", "rejected_events", "projection_checkpoints"]
        await connection.execute(f"TRUNCATE {', '.join([*tables, *READ_MODELS])}")
    finally:
        await connection.close()


async def _check_history(history: History, seed: int, urls: list[str]) -> None:
    oracle = expected(history.events)
    rng = random.Random(seed)
    results = []
    for url, batch in zip(urls, (1_000, rng.randint(1, 9), rng.randint(10, 80)), strict=True):
        await reset(url)
        results.append(await project_in_order(url, history.arrival(rng), rng, batch))
    for models in results[1:]:
        for table in READ_MODELS:
            assert models[table] == results[0][table], table
    report = await rebuild(urls[-1], swap=False)
    connection = await database.connect(urls[-1])
    try:
        assert await snapshot(connection, report.schema) == results[-1]
        assert await read_models(connection) == oracle
    finally:
        await connection.close()


HISTORY_EXAMPLES = int(os.environ.get("METERING_HISTORY_EXAMPLES", "25"))


def test_generated_histories_give_the_oracle_in_any_order_live_or_rebuilt(
    new_database: Callable[[], str],
) -> None:
    """Each generated history, in three random arrival orders with random
    transaction and batch sizes, projects to identical read models, equal to a
    rebuild and to the oracle (issue 10, "The proof")."""
    urls = [new_database() for _ in range(3)]

    @settings(
        max_examples=HISTORY_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        phases=(Phase.explicit, Phase.generate),
    )  # an example takes seconds: no shrinking
    @given(history=histories(), seed=st.integers(0, 2**32))
    def check(history: History, seed: int) -> None:
        asyncio.run(_check_history(history, seed, urls))

    check()


@pytest.mark.parametrize("correction_first", [True, False])
async def test_a_correction_counts_where_the_corrected_event_is_not_where_its_copy_says(
    correction_first: bool, new_database: Callable[[], str]
) -> None:
    # REVIEW F3: the correction's copy says another time (another period),
    # scenario and run, and no module; the corrected event says otherwise.
    from datetime import UTC, timedelta

    from services.emitter import build_event
    from tests.support.events import module_execution

    when = datetime(2026, 11, 20, 8, tzinfo=UTC)
    execution = module_execution("org-1", 3, Decimal("2.5"), scenario="scn-1", run="run-1")
    other = module_execution("org-1", 4, Decimal("1"), scenario="scn-1", run="run-1")
    correction = build_event(
        "com.metering.credits.adjusted.v1",
        {
            "organization_id": "org-1",
            "scenario_id": "scn-wrong",
            "run_id": "run-wrong",
            "credits": "-0.5",
            "reason_code": "support",
            "corrects_event": {"source": execution.source, "id": execution.id},
            "corrects_time": when - timedelta(days=40),
        },
        source="support",
        event_id="c-1",
        time=when + timedelta(days=2),
    )
    order = [correction, execution, other] if correction_first else [execution, other, correction]
    async with arrived_one_by_one(new_database(), order) as db:
        periods = await db.fetch("SELECT period_start, credits_used FROM billing_periods")
        assert [tuple(r) for r in periods] == [(datetime(2026, 11, 1, tzinfo=UTC), Decimal(3))]
        runs = await db.fetch("SELECT run_id, scenario_id, credits_used, module_count FROM runs")
        assert [tuple(r) for r in runs] == [("run-1", "scn-1", Decimal(3), 2)]
        modules = await db.fetch(
            "SELECT module_id, credits_used, executions FROM run_modules ORDER BY module_id"
        )
        assert [tuple(r) for r in modules] == [("3", Decimal(2), 1), ("4", Decimal(1), 1)]
        scenarios = await db.fetch("SELECT scenario_id, credits_used, runs FROM scenario_usage")
        assert [tuple(r) for r in scenarios] == [("scn-1", Decimal(3), 1)]


async def project_sharded(
    url: str, events: list[TypedEvent], rng: random.Random, count: int
) -> set[int]:
    """Store `events` in random transactions while `count` shards are projected in a random
    interleaving with random batch sizes, until every shard is caught up; returns the
    shards that projected events."""
    layout = Shard.layout(count)
    busy: set[int] = set()
    db = await database.connect(url)
    try:
        await prepare_connection(db)
        await prepare_recorder(db)
        await claim(db, count)

        async def project(shard: Shard) -> bool:
            batch = await project_next(db, rng.randint(1, 40), shard=shard)
            if batch is not None and batch.events:
                busy.add(shard.index)
            return batch is not None

        offset = 0
        while offset < len(events):
            size = rng.randint(1, 60)
            await store(db, events[offset : offset + size], first_offset=offset)
            offset += size
            for shard in rng.sample(layout, rng.randint(0, count)):
                await project(shard)
        while not await event_store.all_caught_up(db, PROJECTION):
            for shard in rng.sample(layout, count):
                while await project(shard):
                    pass
    finally:
        await db.close()
    return busy


SHARDED_EXAMPLES = max(HISTORY_EXAMPLES // 3, 4)


def test_shards_projected_in_any_interleaving_give_the_oracle_and_the_whole_projection(
    new_database: Callable[[], str],
) -> None:
    """Issue 13, scale out: the projection split in 2 or 3 shards by organization, each
    with its own checkpoint, projected in random interleavings while events arrive, gives
    exactly the oracle's read models and those of a rebuild in as many parallel shards."""
    url = new_database()
    split: list[int] = []

    @settings(
        max_examples=SHARDED_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        phases=(Phase.explicit, Phase.generate),
    )
    @given(history=histories(), seed=st.integers(0, 2**32), count=st.sampled_from([2, 3]))
    def check(history: History, seed: int, count: int) -> None:
        async def run() -> None:
            await reset(url)
            rng = random.Random(seed)
            busy = await project_sharded(url, history.arrival(rng), rng, count)
            split.append(len(busy))
            report = await rebuild(url, swap=False, parallel=count)
            connection = await database.connect(url)
            try:
                assert await read_models(connection) == expected(history.events)
                assert await snapshot(connection) == await snapshot(connection, report.schema)
            finally:
                await connection.close()

        asyncio.run(run())

    check()
    assert max(split) >= 2, f"no example spread its organizations over two shards: {split}"


@pytest.mark.parametrize("one_by_one", [True, False])
async def test_a_scenarios_last_run_follows_its_runs_when_a_run_moves_scenario(
    one_by_one: bool, new_database: Callable[[], str]
) -> None:
    # Found by a rebuild in one batch (issue 13): the last run was a running greatest()
    # that a run moving out of a scenario could not lower. run-2's execution names
    # scn-b; its run event, later, names scn-a, and the least named wins: run-2 moves.
    from datetime import UTC, timedelta

    from services.emitter import build_event
    from services.query_api.queries import SCENARIO
    from tests.support.events import module_execution

    t1 = datetime(2026, 11, 10, 8, tzinfo=UTC)
    t2 = t1 + timedelta(hours=5)
    first = module_execution("org-1", 1, Decimal(1), scenario="scn-b", run="run-1", when=t1)
    moved = module_execution("org-1", 2, Decimal(2), scenario="scn-b", run="run-2", when=t2)
    run_event = build_event(
        "com.metering.scenario_run.finished.v1",
        {
            "organization_id": "org-1",
            "scenario_id": "scn-a",
            "run_id": "run-2",
            "trigger": "scheduled",
            "status": "success",
            "started_at": t2 - timedelta(minutes=1),
            "finished_at": t2 + timedelta(minutes=1),
            "duration_ms": 120_000,
        },
        source="runner",
        event_id="run-2-finished",
        time=t2 + timedelta(minutes=1),
    )
    events = [first, moved, run_event]
    if one_by_one:
        context = arrived_one_by_one(new_database(), events)
    else:
        context = arrived_one_by_one(new_database(), [])
    async with context as db:
        if not one_by_one:
            await store(db, events)
            await project_everything(db, 100)
        last_runs = {}
        for scenario in ("scn-a", "scn-b"):
            row = await db.fetchrow(SCENARIO, "org-1", scenario, t1)
            assert row is not None, scenario
            last_runs[scenario] = row["last_run_at"]
    assert last_runs == {"scn-a": t2 - timedelta(minutes=1), "scn-b": t1}
