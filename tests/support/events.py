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


def period_started(
    organization: str, plan_credits: str, start: datetime, end: datetime, event_id: str = "sub-1"
) -> TypedEvent:
    """A subscribed billing period [start, end) of `plan_credits` on the plan `core`."""
    return build_event(
        "com.metering.subscription.period_started.v1",
        {
            "organization_id": organization,
            "plan": "core",
            "plan_credits": plan_credits,
            "period_start": start,
            "period_end": end,
        },
        source="billing",
        event_id=event_id,
        time=start,
    )


def auto_purchase_configured(
    organization: str,
    event_id: str,
    at: datetime,
    threshold: str,
    pack: str,
    cap: str | None = None,
) -> TypedEvent:
    """Auto-purchase on: a `pack` below `threshold` credits left, at most `cap` a period."""
    data = {
        "organization_id": organization,
        "enabled": True,
        "threshold_credits": threshold,
        "pack_credits": pack,
    }
    if cap is not None:
        data["max_credits_per_period"] = cap
    return build_event(
        "com.metering.credits.auto_purchase_configured.v1",
        data,
        source="billing",
        event_id=event_id,
        time=at,
    )


def budget_set(
    organization: str, scenario: str, event_id: str, at: datetime, credits: str | None
) -> TypedEvent:
    """A scenario's budget of `credits` per period from `at` on (None: no budget)."""
    data: dict[str, object] = {
        "organization_id": organization,
        "scenario_id": scenario,
        "set_at": at,
    }
    if credits is not None:
        data["credits_per_period"] = credits
    return build_event(
        "com.metering.scenario.budget_set.v1", data, source="billing", event_id=event_id, time=at
    )
