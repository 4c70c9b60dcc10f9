"""Histories with subscriptions, and the billing read models they imply, computed in Python.

The oracle shares nothing with the projector's SQL: it resolves each event's
period and day from the whole set of subscription periods, the rule the read
models must follow whatever order the events arrive in.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from schemas import TypedEvent
from services.emitter import build_event

T = "com.metering."
START = datetime(2026, 9, 15, tzinfo=UTC)
DAYS = 85


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    zone: str


def _subscription(org: str, period: Period, event_id: str) -> TypedEvent:
    return build_event(
        T + "subscription.period_started.v1",
        {
            "organization_id": org,
            "plan": "pro",
            "plan_credits": "5000",
            "period_start": period.start,
            "period_end": period.end,
            "timezone": period.zone,
        },
        source="billing",
        event_id=event_id,
        time=period.start,
    )


def _execution(org: str, n: int, rng: random.Random, when: datetime) -> TypedEvent:
    credits = Decimal(rng.randint(0, 9_999_999)) / Decimal(1_000_000)
    return build_event(
        T + "module_execution.completed.v2",
        {
            "organization_id": org,
            "scenario_id": f"scn-{n // 4 % 3}",  # a run belongs to one scenario
            "run_id": f"run-{org}-{n // 4}",
            "module_id": str(rng.randrange(4)),
            "app": "openai",
            "action": "createCompletion",
            "operations": 1,
            "credits": str(credits),
            "started_at": when,
            "finished_at": when + timedelta(seconds=1),
            "status": rng.choice(["success", "error"]),
        },
        source="runner",
        event_id=f"m-{org}-{n}",
        time=when,
    )


def _purchase(org: str, n: int, rng: random.Random, when: datetime) -> TypedEvent:
    return build_event(
        T + "credits.purchased.v1",
        {
            "organization_id": org,
            "credits": str(rng.randint(1, 900)),
            "purchase": "manual",
            "purchased_at": when,
        },
        source="billing",
        event_id=f"p-{org}-{n}",
        time=when + timedelta(hours=rng.randint(0, 96)),  # stamped when processed
    )


def _correction(org: str, n: int, rng: random.Random, when: datetime) -> TypedEvent:
    return build_event(
        T + "credits.adjusted.v1",
        {
            "organization_id": org,
            "scenario_id": f"scn-{rng.randrange(3)}",
            "credits": str(Decimal(rng.randint(-500, 500)) / 100),
            "reason_code": "support",
            "corrects_event": {"source": "runner", "id": f"m-{org}-{n}"},
            "corrects_time": when,
        },
        source="support",
        event_id=f"c-{org}-{n}",
        time=when + timedelta(days=rng.randint(0, 20)),
    )


def billing_history(
    seed: int, executions: int = 400
) -> tuple[list[TypedEvent], dict[str, list[Period]]]:
    """Three organizations: two with periods (a time zone change, a re-sent period), one without."""
    rng = random.Random(seed)
    periods = {
        "org-a": [
            Period(
                datetime(2026, 10, 3, 8, tzinfo=UTC),
                datetime(2026, 11, 3, 8, tzinfo=UTC),
                "Europe/Prague",
            ),
            Period(
                datetime(2026, 11, 3, 8, tzinfo=UTC),
                datetime(2026, 12, 3, 8, tzinfo=UTC),
                "Asia/Tokyo",
            ),
        ],
        "org-b": [
            Period(
                datetime(2026, 10, 20, 22, 30, tzinfo=UTC),
                datetime(2026, 11, 20, 22, 30, tzinfo=UTC),
                "America/New_York",
            ),
        ],
        "org-c": [],
    }
    events: list[TypedEvent] = []
    events.append(  # an upgrade in org-a's second period (REVIEW B3), in any order
        build_event(
            T + "subscription.plan_changed.v1",
            {
                "organization_id": "org-a",
                "plan": "business",
                "plan_credits": "20000",
                "effective_at": datetime(2026, 11, 10, 12, tzinfo=UTC),
            },
            source="billing",
            event_id="plan-org-a",
            time=datetime(2026, 11, 10, 12, tzinfo=UTC),
        )
    )
    for org, org_periods in periods.items():
        for k, period in enumerate(org_periods):
            events.append(_subscription(org, period, f"sub-{org}-{k}"))
        if org_periods:  # a billing system re-sending an old period
            events.append(_subscription(org, org_periods[0], f"sub-{org}-0-resent"))
    for n in range(executions):
        org = rng.choice(sorted(periods))
        when = START + timedelta(seconds=rng.randrange(DAYS * 86400))
        roll = rng.random()
        if roll < 0.03:
            events.append(_purchase(org, n, rng, when))
        elif roll < 0.06:
            events.append(_correction(org, n, rng, when))
        else:
            events.append(_execution(org, n, rng, when))
    return events, periods


def _month(t: datetime) -> datetime:
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(t: datetime) -> datetime:
    return _month(_month(t) + timedelta(days=32))


def clipped(periods: list[Period]) -> list[Period]:
    """Subscribed periods as they count: each ends at the next one's start at the latest."""
    ordered = sorted(periods, key=lambda p: p.start)
    return [
        Period(p.start, min([p.end, *(q.start for q in ordered[k + 1 : k + 2])]), p.zone)
        for k, p in enumerate(ordered)
    ]


def resolve(periods: list[Period], t: datetime) -> Period:
    """The period an instant counts in: its subscribed period, else the clipped calendar month."""
    periods = clipped(periods)
    holding = [p for p in periods if p.start <= t < p.end]
    if holding:
        return max(holding, key=lambda p: p.start)
    start = max([_month(t), *(p.end for p in periods if p.end <= t)])
    end = min([_next_month(t), *(p.start for p in periods if p.start > t)])
    return Period(start, end, "UTC")


@dataclass
class Expected:
    periods: dict[tuple[str, datetime], tuple[datetime, Decimal, Decimal]]
    """(organization, start) -> (end, credits used, extra credits)."""
    days: dict[tuple[str, date], Decimal]
    scenario_periods: dict[tuple[str, datetime, str], Decimal]


def expected_models(events: list[TypedEvent], periods: dict[str, list[Period]]) -> Expected:
    used: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    extra: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    ends: dict[tuple[str, datetime], datetime] = {}
    days: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    scenarios: dict[tuple[str, datetime, str], Decimal] = defaultdict(Decimal)
    for org, org_periods in periods.items():
        for p in clipped(org_periods):
            ends[(org, p.start)] = p.end
            used[(org, p.start)] += 0
            extra[(org, p.start)] += 0
    for event in events:
        data = event.data
        org = event.subject
        kind = event.type.rsplit(".", 1)[0].removeprefix(T)
        if kind == "credits.purchased":
            period = resolve(periods[org], data.purchased_at)  # type: ignore[attr-defined]
            extra[(org, period.start)] += data.credits  # type: ignore[attr-defined]
            ends[(org, period.start)] = period.end
            continue
        if kind == "credits.adjusted":
            at = data.corrects_time  # type: ignore[attr-defined]
        elif kind == "module_execution.completed":
            at = event.time
        else:
            continue
        period = resolve(periods[org], at)
        credits = data.credits  # type: ignore[attr-defined]
        used[(org, period.start)] += credits
        extra[(org, period.start)] += 0
        ends[(org, period.start)] = period.end
        days[(org, at.astimezone(ZoneInfo(period.zone)).date())] += credits
        scenarios[(org, period.start, data.scenario_id)] += credits  # type: ignore[attr-defined]
    return Expected(
        {key: (ends[key], used[key], extra[key]) for key in used},
        dict(days),
        dict(scenarios),
    )
