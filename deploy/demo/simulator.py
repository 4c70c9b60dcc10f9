"""A scenario runner stand-in for demos: organizations, subscriptions, runs of modules.

It produces what a real runner would (and a little of what it should not):
subscriptions and auto-purchase settings, runs with several modules, AI modules
with fractional credits, loops that run a module many times, late events,
duplicates and a few invalid records.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas import TypedEvent
from schemas.catalog import (
    AUTO_PURCHASE_CONFIGURED,
    MODULE_EXECUTION_COMPLETED,
    SCENARIO_BUDGET_SET,
    SCENARIO_RUN_FINISHED,
    SCENARIO_RUN_STARTED,
    SUBSCRIPTION_PERIOD_STARTED,
)
from services.emitter.client import build_event

SOURCE = "demo-runner"
AGENT_RUNS = 0.15
"""The share of runs that are an AI agent's (`agent-1`, `agent-2`) rather than a scenario's."""

MODULES = [
    ("webhooks", "customWebhook", Decimal(1)),
    ("google-sheets", "addRow", Decimal(1)),
    ("http", "makeRequest", Decimal(1)),
    ("openai", "createCompletion", None),  # AI: credits by tokens, fractional
    ("slack", "postMessage", Decimal(1)),
    ("builtin", "iterator", Decimal(0)),
]


def organizations(count: int) -> list[str]:
    return [f"org-{n:03d}" for n in range(1, count + 1)]


def setup(orgs: list[str], now: datetime) -> list[TypedEvent]:
    """A billing period for each organization (started 1 to 25 days ago), auto-purchase,
    and for the first one a budget its scn-1 outgrows (notifications at 90 and 100 %)."""
    rng = random.Random(1)
    events = []
    for org in orgs:
        start = (now - timedelta(days=rng.randint(1, 25))).replace(microsecond=0)
        events.append(
            build_event(
                f"{SUBSCRIPTION_PERIOD_STARTED}.v1",
                {
                    "organization_id": org,
                    "plan": "pro",
                    "plan_credits": str(rng.choice([1000, 5000])),
                    "period_start": start,
                    "period_end": start + timedelta(days=30),
                    "timezone": rng.choice(["UTC", "Europe/Prague", "America/New_York"]),
                },
                source=SOURCE,
                event_id=f"sub-{org}-{start:%Y%m%d}",
                time=start,
            )
        )
        if rng.random() < 0.5:
            events.append(
                build_event(
                    f"{AUTO_PURCHASE_CONFIGURED}.v1",
                    {
                        "organization_id": org,
                        "enabled": True,
                        "threshold_credits": "100",
                        "pack_credits": "500",
                    },
                    source=SOURCE,
                    event_id=f"auto-{org}",
                    time=start,
                )
            )
        if org == orgs[0]:
            events.append(
                build_event(
                    f"{SCENARIO_BUDGET_SET}.v1",
                    {
                        "organization_id": org,
                        "scenario_id": "scn-1",
                        "set_at": start,
                        "credits_per_period": "10",
                    },
                    source=SOURCE,
                    event_id=f"budget-{org}-scn-1",
                    time=start,
                )
            )
    return events


def _what_runs(rng: random.Random) -> tuple[str, str]:
    """A scenario, or now and then an AI agent: (its id, the run's kind)."""
    if rng.random() < AGENT_RUNS:
        return f"agent-{rng.randint(1, 2)}", "ai_agent"
    return f"scn-{rng.randint(1, 6)}", "scenario"


def runs(orgs: list[str], count: int, now: datetime, seed: int = 7) -> Iterator[TypedEvent]:
    """`count` scenario runs spread over the last days, each with its module executions."""
    rng = random.Random(seed)
    for n in range(count):
        org = rng.choice(orgs)
        scenario, kind = _what_runs(rng)
        run = f"run-{n:06d}"
        started = (now - timedelta(seconds=rng.randint(60, 5 * 86400))).replace(microsecond=0)
        trigger = rng.choice(["scheduled", "instant", "webhook", "manual"])
        base = {"organization_id": org, "scenario_id": scenario, "run_id": run}
        yield build_event(
            f"{SCENARIO_RUN_STARTED}.v1",
            {**base, "trigger": trigger, "started_at": started, "kind": kind},
            source=SOURCE,
            event_id=f"{run}-start",
            time=started,
        )
        at = started
        status = "success"
        for position, (app, action, unit) in enumerate(rng.sample(MODULES, rng.randint(2, 5))):
            loops = rng.randint(1, 8) if app == "builtin" else 1
            for loop in range(loops):
                credits = unit if unit is not None else Decimal(rng.randint(1, 9_999_999)) / 10**6
                outcome = "error" if rng.random() < 0.02 else "success"
                status = "error" if outcome == "error" else status
                yield build_event(
                    f"{MODULE_EXECUTION_COMPLETED}.v2",
                    {
                        **base,
                        "module_id": str(position + 1),
                        "app": app,
                        "action": action,
                        "operations": 1,
                        "credits": str(credits),
                        "started_at": at,
                        "finished_at": at + timedelta(milliseconds=400),
                        "status": outcome,
                    },
                    source=SOURCE,
                    event_id=f"{run}-{position}-{loop}",
                    time=at,
                )
                at += timedelta(seconds=1)
        yield build_event(
            f"{SCENARIO_RUN_FINISHED}.v1",
            {
                **base,
                "trigger": trigger,
                "kind": kind,
                "status": status,
                "started_at": started,
                "finished_at": at,
                "duration_ms": int((at - started).total_seconds() * 1000),
            },
            source=SOURCE,
            event_id=f"{run}-finish",
            time=at,
        )


def invalid_records() -> list[tuple[bytes, bytes]]:
    """A few records a broken producer might send: they end up in the dead-letter topic."""
    return [
        (b"org-001", b"this is not json"),
        (b"org-001", b'{"specversion": "1.0", "type": "com.example.unknown.v1"}'),
        (b"org-002", b"[1, 2, 3]"),
    ]


def now() -> datetime:
    return datetime.now(UTC)
