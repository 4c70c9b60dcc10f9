"""A rebuild from position 0 equals the live read models, row for row, and swaps in live."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import asyncpg

from schemas import TypedEvent
from services.emitter import build_event
from services.projector.projection import READ_MODELS
from services.projector.rebuild import rebuild
from tests.support.history import history
from tests.support.projecting import project_everything
from tests.support.store import store


def other_events(rng: random.Random, count: int) -> list[TypedEvent]:
    """Subscriptions, run events and corrections mixed in with the module executions."""
    events: list[TypedEvent] = []
    for i in range(count):
        org = f"org-{rng.randrange(5)}"
        when = datetime(2026, 8, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(92 * 86400))
        data: dict[str, object]
        kind = rng.choices(["subscription", "finished", "adjusted"], weights=[1, 10, 10])[0]
        if kind == "subscription":
            data = {
                "organization_id": org,
                "plan": "pro",
                "plan_credits": "10000",
                "period_start": when.isoformat(),
                "period_end": (when + timedelta(days=30)).isoformat(),
                "timezone": rng.choice(["Europe/Prague", "America/New_York"]),
            }
            type_name = "com.metering.subscription.period_started.v1"
        elif kind == "finished":
            scenario = f"scn-{rng.randrange(8)}"
            data = {
                "organization_id": org,
                "scenario_id": scenario,
                "run_id": f"run-{org}-{scenario}-{rng.randrange(50)}",
                "trigger": "scheduled",
                "status": rng.choice(["success", "error"]),
                "started_at": when.isoformat(),
                "finished_at": when.isoformat(),
                "duration_ms": rng.randrange(10_000),
            }
            type_name = "com.metering.scenario_run.finished.v1"
        else:
            data = {
                "organization_id": org,
                "credits": f"-{rng.randrange(100)}.5",
                "reason_code": "refund",
                "corrects_event": {"source": "test", "id": "m-1"},
                "corrects_time": when.isoformat(),
            }
            type_name = "com.metering.credits.adjusted.v1"
        events.append(build_event(type_name, data, source="test", event_id=f"o-{i}", time=when))
    return events


async def differences(db: asyncpg.Connection, schema: str) -> dict[str, int]:
    """Rows in one version of each read model and not the other."""
    found = {}
    for table in READ_MODELS:
        live, rebuilt = f"public.{table}", f'"{schema}".{table}'
        n = await db.fetchval(
            f"SELECT (SELECT count(*) FROM (TABLE {live} EXCEPT ALL TABLE {rebuilt}) a)"
            f" + (SELECT count(*) FROM (TABLE {rebuilt} EXCEPT ALL TABLE {live}) b)"
        )
        if n:
            found[table] = n
    return found


async def test_a_rebuild_equals_the_live_models_row_for_row(
    db: asyncpg.Connection, database_url: str
) -> None:
    rng = random.Random(99)
    events, _ = history(seed=99, events=97_000)
    events += other_events(rng, 3_000)
    rng.shuffle(events)
    for start in range(0, len(events), 10_000):
        await store(db, events[start : start + 10_000], first_offset=start)
        await project_everything(db, rng.choice([997, 4999]))
    assert await db.fetchval("SELECT count(*) FROM module_executions") > 90_000

    report = await rebuild(database_url, swap=False)

    assert report.events == len(events)
    assert await differences(db, report.schema) == {}


async def test_a_swapped_rebuild_serves_and_the_live_projector_carries_on(
    db: asyncpg.Connection, database_url: str
) -> None:
    events, expected = history(seed=4, events=3_000)
    await store(db, events[:2000])
    await project_everything(db, 500)
    await db.execute("UPDATE runs SET credits_used = credits_used + 1000")  # a damaged model

    report = await rebuild(database_url, swap=True)
    await store(db, events[2000:], first_offset=2000)
    await project_everything(db, 500)

    assert report.swapped
    runs = await db.fetch("SELECT organization_id, run_id, credits_used FROM runs")
    assert {(r[0], r[1]): r[2] for r in runs} == dict(expected.run)
    leftovers = await db.fetchval(
        "SELECT count(*) FROM pg_namespace"
        " WHERE nspname LIKE 'rebuild_%' OR nspname LIKE 'retired_%'"
    )
    assert leftovers == 0
