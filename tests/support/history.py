"""Random but reproducible usage histories, and their totals computed independently."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from schemas import TypedEvent
from services.emitter import build_event

T = "com.metering."


@dataclass
class Expected:
    """What the read models must say, computed from the events without SQL."""

    period_used: dict[tuple[str, datetime], Decimal] = field(
        default_factory=lambda: defaultdict(Decimal)
    )
    period_extra: dict[tuple[str, datetime], Decimal] = field(
        default_factory=lambda: defaultdict(Decimal)
    )
    daily: dict[tuple[str, date], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    scenario: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    scenario_period: dict[tuple[str, datetime, str], Decimal] = field(
        default_factory=lambda: defaultdict(Decimal)
    )
    run: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    run_module: dict[tuple[str, str, str], Decimal] = field(
        default_factory=lambda: defaultdict(Decimal)
    )
    runs_per_scenario: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    executions: int = 0


def month_start(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def history(seed: int, events: int, organizations: int = 5) -> tuple[list[TypedEvent], Expected]:
    """Module executions over three months (calendar-month periods, UTC), with purchases."""
    rng = random.Random(seed)
    expected = Expected()
    out: list[TypedEvent] = []
    start = datetime(2026, 8, 1, tzinfo=UTC)
    for i in range(events):
        org = f"org-{rng.randrange(organizations)}"
        when = start + timedelta(seconds=rng.randrange(92 * 86400))
        if rng.random() < 0.02:
            credits = Decimal(rng.randint(1, 10_000))
            out.append(
                build_event(
                    T + "credits.purchased.v1",
                    {
                        "organization_id": org,
                        "credits": str(credits),
                        "purchase": "manual",
                        "purchased_at": when.isoformat(),
                    },
                    source="test",
                    event_id=f"p-{i}",
                    time=when,
                )
            )
            expected.period_extra[(org, month_start(when))] += credits
            continue
        scenario = f"scn-{rng.randrange(8)}"
        run = f"run-{org}-{scenario}-{rng.randrange(events // 40 + 1)}"
        module = str(rng.randrange(6))
        credits = Decimal(rng.randint(0, 9_999_999)) / Decimal(1_000_000)
        out.append(
            build_event(
                T + "module_execution.completed.v2",
                {
                    "organization_id": org,
                    "scenario_id": scenario,
                    "run_id": run,
                    "module_id": module,
                    "app": "openai",
                    "action": "createCompletion",
                    "operations": 1,
                    "credits": str(credits),
                    "started_at": when.isoformat(),
                    "finished_at": (when + timedelta(seconds=1)).isoformat(),
                    "status": rng.choice(["success", "success", "warning", "error"]),
                },
                source="test",
                event_id=f"m-{i}",
                time=when,
            )
        )
        period = month_start(when)
        expected.period_used[(org, period)] += credits
        expected.daily[(org, when.date())] += credits
        expected.scenario[(org, scenario)] += credits
        expected.scenario_period[(org, period, scenario)] += credits
        expected.run[(org, run)] += credits
        expected.run_module[(org, run, module)] += credits
        expected.runs_per_scenario[(org, scenario)].add(run)
        expected.executions += 1
    return out, expected
