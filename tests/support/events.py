"""Event factories for the tests: realistic module executions and their expected totals."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas import TypedEvent
from schemas.payloads import ModuleExecutionCompletedV2
from services.emitter import build_event

MODULE_V2 = "com.metering.module_execution.completed.v2"


def module_execution(
    organization: str,
    index: int,
    credits: Decimal,
    *,
    source: str = "runner-test",
    scenario: str = "scn-1",
    run: str = "run-1",
    when: datetime | None = None,
) -> TypedEvent:
    started = when or datetime(2026, 11, 20, 8, 0, tzinfo=UTC) + timedelta(seconds=index)
    payload = ModuleExecutionCompletedV2(
        organization_id=organization,
        scenario_id=scenario,
        run_id=run,
        module_id=str(index % 7),
        app="openai",
        action="createCompletion",
        operations=1,
        credits=credits,
        started_at=started,
        finished_at=started + timedelta(milliseconds=250),
        status="success",
    )
    return build_event(MODULE_V2, payload, source=source, event_id=f"evt-{index}", time=started)


def random_credits(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(0, 5_000_000)) / Decimal(1_000_000)


def with_other_credits(event: TypedEvent) -> TypedEvent:
    """The same id and source, a different payload: a conflict."""
    data = event.data.model_copy(update={"credits": event.data.credits + 1})  # type: ignore[attr-defined]
    return build_event(event.type, data, source=event.source, event_id=event.id, time=event.time)


def bulk_executions(rng: random.Random, count: int, source: str) -> list[TypedEvent]:
    """`count` module executions over 20 organizations, 5 scenarios and runs of 40."""
    return [
        module_execution(
            f"bulk-{i % 20}",
            i,
            random_credits(rng),
            source=source,
            scenario=f"scn-{(i // 40) % 5}",
            run=f"run-{i // 40}",
        )
        for i in range(count)
    ]
