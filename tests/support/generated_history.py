"""Hypothesis-generated histories of organizations, and the read models they imply, in Python.

A history holds what real, independent producers send: subscription periods
starting at any second (first, renewals, gaps, re-sent copies, a time zone per
period), plan changes mid-period, manual and automatic purchases stamped when
processed, runs with loops and AI modules with fractional credits (with and
without run events), corrections (right or wrong copies of the corrected
event's place, of events never sent, twice for one event, module-level ones),
exact duplicates and conflicting copies.

The oracle (`expected`) shares nothing with the projector's SQL. It applies
the rules to the set of events: a period is the subscribed one with the latest
start that holds the time, else the UTC calendar month clipped by subscribed
periods; a correction counts where the event it corrects is when that event is
in the set, else where its own copy says; a run's scenario is the least one
its executions, run events and resolved corrections name.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import asyncpg
from hypothesis import strategies as st

from schemas import TypedEvent
from services.emitter import build_event
from tests.support.billing_history import Period, clipped, resolve

T = "com.metering."
BASE = datetime(2026, 5, 1, tzinfo=UTC)
SPAN_S = 130 * 86400
ZONES = (
    "UTC",
    "Europe/Prague",
    "Asia/Tokyo",
    "America/New_York",
    "Asia/Kolkata",
    "Pacific/Chatham",
)


@dataclass
class History:
    events: list[TypedEvent]
    """Every copy sent, originals first."""
    conflicts: dict[int, int] = field(default_factory=dict)
    """Index of a conflicting copy -> index of its original, which it must follow."""

    def arrival(self, rng: random.Random) -> list[TypedEvent]:
        """A random arrival order in which each conflicting copy comes after its original."""
        order = list(range(len(self.events)))
        rng.shuffle(order)
        placed: list[int] = [i for i in order if i not in self.conflicts]
        for copy, original in self.conflicts.items():
            after = placed.index(original) + 1
            placed.insert(rng.randint(after, len(placed)), copy)
        return [self.events[i] for i in placed]


def _at(rng: random.Random) -> datetime:
    return BASE + timedelta(seconds=rng.randrange(SPAN_S))


def _credits(rng: random.Random) -> Decimal:
    if rng.random() < 0.5:  # an AI module: fractional credits
        return Decimal(rng.randint(1, 9_999_999)) / Decimal(1_000_000)
    return Decimal(rng.randint(0, 3))


def _periods(org: str, rng: random.Random, count: int) -> list[TypedEvent]:
    start = BASE + timedelta(seconds=rng.randrange(50 * 86400))
    out = []
    for k in range(count):
        end = start + timedelta(seconds=rng.randint(27 * 86400, 31 * 86400))
        data = {
            "organization_id": org,
            "plan": "pro",
            "plan_credits": str(rng.choice([1000, 5000])),
            "period_start": start,
            "period_end": end,
            "timezone": rng.choice(ZONES),
        }
        out.append(
            build_event(
                T + "subscription.period_started.v1",
                data,
                source="billing",
                event_id=f"sub-{org}-{k}",
                time=start,
            )
        )
        roll = rng.random()
        if roll < 0.15:  # redefined later with another end: the latest by time wins
            out.append(
                build_event(
                    T + "subscription.period_started.v1",
                    {**data, "period_end": end - timedelta(days=5), "plan_credits": "700"},
                    source="billing",
                    event_id=f"sub-{org}-{k}-shortened",
                    time=start + timedelta(days=1),
                )
            )
            end -= timedelta(days=5)
        elif roll < 0.3:  # another period starting inside this one: it clips it
            out.append(
                build_event(
                    T + "subscription.period_started.v1",
                    {
                        **data,
                        "period_start": start + timedelta(days=2, seconds=9),
                        "period_end": end + timedelta(days=2, seconds=9),
                        "timezone": "Asia/Tokyo",
                    },
                    source="billing",
                    event_id=f"sub-{org}-{k}-moved",
                    time=start + timedelta(days=2),
                )
            )
            end += timedelta(days=2, seconds=9)
        if rng.random() < 0.3:  # re-sent, days later, under another id
            out.append(
                build_event(
                    T + "subscription.period_started.v1",
                    data,
                    source="billing",
                    event_id=f"sub-{org}-{k}-again",
                    time=end,
                )
            )
        start = end + timedelta(seconds=rng.choice([0, 0, 0, 3 * 86400 + 17]))
    return out


def _run(org: str, n: int, rng: random.Random) -> list[TypedEvent]:
    scenario, run, t0 = f"scn-{rng.randrange(4)}", f"run-{org}-{n}", _at(rng)
    out = []
    for i in range(rng.randint(1, 6)):  # modules repeat: loops
        when = t0 + timedelta(seconds=i)
        out.append(
            build_event(
                T + "module_execution.completed.v2",
                {
                    "organization_id": org,
                    "scenario_id": scenario,
                    "run_id": run,
                    "module_id": (module := str(rng.randrange(4))),
                    "app": "openai" if module < "2" else "http",  # a module is one app
                    "action": "do",
                    "operations": 1,
                    "credits": str(_credits(rng)),
                    "started_at": when,
                    "finished_at": when + timedelta(seconds=1),
                    "status": rng.choice(["success", "success", "error"]),
                },
                source="runner",
                event_id=f"m-{org}-{n}-{i}",
                time=when,
            )
        )
    if rng.random() < 0.5:
        finished = t0 + timedelta(seconds=30)
        common = {
            "organization_id": org,
            "scenario_id": scenario,
            "run_id": run,
            "trigger": "scheduled",
            "started_at": t0,
            "kind": rng.choice(["scenario", "scenario", "ai_agent"]),
        }
        out.append(
            build_event(
                T + "scenario_run.started.v1",
                common,
                source="runner",
                event_id=f"rs-{org}-{n}",
                time=t0,
            )
        )
        out.append(
            build_event(
                T + "scenario_run.finished.v1",
                {
                    **common,
                    "status": "success",
                    "finished_at": finished,
                    "duration_ms": 30_000,
                },
                source="runner",
                event_id=f"rf-{org}-{n}",
                time=finished,
            )
        )
    return out


def _purchase(org: str, n: int, rng: random.Random) -> TypedEvent:
    bought = _at(rng)
    return build_event(
        T + "credits.purchased.v1",
        {
            "organization_id": org,
            "credits": str(rng.randint(1, 900)),
            "purchase": rng.choice(["manual", "automatic"]),
            "purchased_at": bought,
        },
        source="billing",
        event_id=f"p-{org}-{n}",
        time=bought + timedelta(hours=rng.randint(0, 96)),
    )


def _plan_change(org: str, n: int, rng: random.Random) -> TypedEvent:
    effective = _at(rng)
    return build_event(
        T + "subscription.plan_changed.v1",
        {
            "organization_id": org,
            "plan": f"plan-{n}",
            "plan_credits": str(rng.randint(1, 9) * 1000),
            "effective_at": effective,
        },
        source="billing",
        event_id=f"plan-{org}-{n}",
        time=effective,
    )


def _auto_purchase(org: str, n: int, rng: random.Random) -> TypedEvent:
    return build_event(
        T + "credits.auto_purchase_configured.v1",
        {
            "organization_id": org,
            "enabled": rng.random() < 0.7,
            "threshold_credits": str(rng.randint(0, 500)),
            "pack_credits": str(rng.randint(1, 9) * 100),
        },
        source="billing",
        event_id=f"ap-{org}-{n}",
        time=_at(rng),
    )


def _correction(org: str, n: int, rng: random.Random, target: TypedEvent | None) -> TypedEvent:
    if target is None:  # of an event never sent
        data: dict[str, Any] = {
            "corrects_time": _at(rng),
            "scenario_id": "scn-x",
            "run_id": f"run-{org}-lost",
            "module_id": "9",
        }
        corrected = {"source": "runner", "id": f"never-{org}-{n}"}
    else:
        d: Any = target.data
        data = {
            "corrects_time": target.time,
            "scenario_id": d.scenario_id,
            "run_id": d.run_id,
            "module_id": d.module_id,
        }
        corrected = {"source": target.source, "id": target.id}
        wrong = rng.random()
        if wrong < 0.2:
            data["corrects_time"] = target.time - timedelta(days=rng.randint(1, 40))
        elif wrong < 0.35:
            data["scenario_id"] = "scn-wrong"
        elif wrong < 0.5:
            data["run_id"] = f"run-{org}-wrong"
        elif wrong < 0.65:
            data["module_id"] = None
        elif wrong < 0.75:
            data.update(scenario_id=None, run_id=None, module_id=None)
    cents = rng.choice([-1, 1]) * rng.randint(1, 500)
    return build_event(
        T + "credits.adjusted.v1",
        {
            "organization_id": org,
            "credits": str(Decimal(cents) / 100),
            "reason_code": "support",
            "corrects_event": corrected,
            **data,
        },
        source="support",
        event_id=f"c-{org}-{n}",
        time=data["corrects_time"] + timedelta(days=rng.randint(0, 20)),
    )


def build_history(rng: random.Random, count: Callable[[int, int], int]) -> History:
    """One to three organizations' histories, all sent to one store.

    `count(low, high)` chooses how many of each thing there are: Hypothesis's
    draws in `histories`, or `rng.randint` for one fixed history.
    """
    events: list[TypedEvent] = []
    for o in range(count(1, 3)):
        org = f"org-{o}"
        events += _periods(org, rng, count(0, 3))
        executions: list[TypedEvent] = []
        for n in range(count(1, 12)):
            run = _run(org, n, rng)
            events += run
            executions += [e for e in run if e.type.startswith(T + "module_execution")]
        events += [_purchase(org, n, rng) for n in range(count(0, 3))]
        events += [_plan_change(org, n, rng) for n in range(count(0, 2))]
        events += [_auto_purchase(org, n, rng) for n in range(count(0, 2))]
        for n in range(count(0, 5)):
            target = rng.choice([*executions, None])
            events.append(_correction(org, n, rng, target))
            if target is not None and rng.random() < 0.2:  # a second correction of it
                events.append(_correction(org, n + 100, rng, target))
    history = History(events[:])
    for _ in range(count(0, 3)):  # exact copies: duplicates
        history.events.append(rng.choice(events))
    for _ in range(count(0, 2)):  # same id, other credits: conflicts
        original = rng.randrange(len(events))
        event = events[original]
        if event.type.endswith("completed.v2"):
            data = event.data.model_copy(update={"credits": cast(Any, event.data).credits + 1})
            history.conflicts[len(history.events)] = original
            history.events.append(
                build_event(
                    event.type, data, source=event.source, event_id=event.id, time=event.time
                )
            )
    return history


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Histories as Hypothesis draws them (see build_history)."""
    rng = draw(st.randoms(use_true_random=False))
    return build_history(rng, lambda low, high: draw(st.integers(low, high)))


@dataclass
class Expected:
    periods: dict[tuple[str, datetime], tuple[datetime, Decimal, Decimal]]
    """(organization, start) -> (end, credits used, extra credits)."""
    plans: dict[tuple[str, datetime], Decimal]
    """(organization, start of a subscribed period) -> plan credits in effect."""
    days: dict[tuple[str, date], Decimal]
    scenario_periods: dict[tuple[str, datetime, str], Decimal]
    scenarios: dict[tuple[str, str], tuple[Decimal, int]]
    """(organization, scenario) -> (credits used all time, runs)."""
    runs: dict[tuple[str, str], tuple[str, Decimal]]
    """(organization, run) -> (scenario, credits used)."""
    run_modules: dict[tuple[str, str, str], tuple[Decimal, int]]
    """(organization, run, module) -> (credits used, executions)."""


def stored(events: list[TypedEvent]) -> list[TypedEvent]:
    """The set the store holds: the first copy of each (source, id)."""
    seen: dict[tuple[str, str], TypedEvent] = {}
    for event in events:
        seen.setdefault((event.source, event.id), event)
    return list(seen.values())


def _subscriptions(events: list[TypedEvent]) -> tuple[dict[str, list[Period]], dict[Any, Decimal]]:
    periods: dict[str, dict[datetime, Period]] = defaultdict(dict)
    credits: dict[tuple[str, datetime], Decimal] = {}
    latest_first = sorted(events, key=lambda e: (e.time, f"{e.source}:{e.id}"), reverse=True)
    for e in latest_first:
        if e.type.startswith(T + "subscription.period_started"):
            if e.data.period_start in periods[e.subject]:  # type: ignore[attr-defined]
                continue  # the latest by event time defines the period
            d: Any = e.data
            periods[e.subject][d.period_start] = Period(
                d.period_start, d.period_end, d.timezone or "UTC"
            )
            credits[(e.subject, d.period_start)] = d.plan_credits
    changes = sorted(
        (e.subject, cast(Any, e.data).effective_at, cast(Any, e.data).plan_credits)
        for e in events
        if e.type.startswith(T + "subscription.plan_changed")
    )
    ends = {
        (org, p.start): p.end for org, ps in periods.items() for p in clipped(list(ps.values()))
    }
    for (org, start), _ in list(credits.items()):
        end = ends[(org, start)]
        inside = [c for o, at, c in changes if o == org and start <= at < end]
        if inside:
            credits[(org, start)] = inside[-1]
    return {org: list(p.values()) for org, p in periods.items()}, credits


def expected(sent: list[TypedEvent]) -> Expected:
    events = stored(sent)
    periods, plans = _subscriptions(events)
    executions = {(e.source, e.id): e for e in events if e.type.startswith(T + "module_execution")}
    used: dict[Any, Decimal] = defaultdict(Decimal)
    extra: dict[Any, Decimal] = defaultdict(Decimal)
    ends: dict[Any, datetime] = {}
    days: dict[Any, Decimal] = defaultdict(Decimal)
    scenario_periods: dict[Any, Decimal] = defaultdict(Decimal)
    scenario_credits: dict[Any, Decimal] = defaultdict(Decimal)
    run_credits: dict[Any, Decimal] = defaultdict(Decimal)
    modules: dict[Any, list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    known: dict[Any, set[str]] = defaultdict(set)
    copies: dict[Any, set[str]] = defaultdict(set)
    for org, org_periods in periods.items():
        for p in clipped(org_periods):
            ends[(org, p.start)] = p.end
            used[(org, p.start)] += 0
            extra[(org, p.start)] += 0
    for e in events:
        org, d = e.subject, cast(Any, e.data)
        if e.type.startswith(T + "scenario_run"):
            known[(org, d.run_id)].add(d.scenario_id)
            continue
        if e.type.startswith(T + "credits.purchased"):
            period = resolve(periods.get(org, []), d.purchased_at)
            extra[(org, period.start)] += d.credits
            used[(org, period.start)] += 0
            ends[(org, period.start)] = period.end
            continue
        place: TypedEvent | None
        if e.type.startswith(T + "module_execution"):
            place, resolved = e, True
        elif e.type.startswith(T + "credits.adjusted"):
            target = executions.get((d.corrects_event.source, d.corrects_event.id))
            resolved = target is not None and target.subject == org
            place = target if resolved else None
        else:
            continue
        at = place.time if place is not None else d.corrects_time
        where: Any = (place or e).data
        scenario, run, module = where.scenario_id, where.run_id, where.module_id
        credits = d.credits
        period = resolve(periods.get(org, []), at)
        used[(org, period.start)] += credits
        extra[(org, period.start)] += 0
        ends[(org, period.start)] = period.end
        days[(org, at.astimezone(ZoneInfo(period.zone)).date())] += credits
        if scenario is not None:
            scenario_periods[(org, period.start, scenario)] += credits
            scenario_credits[(org, scenario)] += credits
        if run is not None:
            run_credits[(org, run)] += credits
            (known if resolved else copies)[(org, run)].add(scenario)
            if module is not None:
                modules[(org, run, module)][0] += credits
                modules[(org, run, module)][1] += int(place is e)
    runs = {}
    for key in set(known) | set(copies) | set(run_credits):
        runs[key] = (min(known[key] or copies[key]), run_credits[key])
    run_counts: dict[Any, int] = defaultdict(int)
    for (org, _), (scenario, _) in runs.items():
        run_counts[(org, scenario)] += 1
    return Expected(
        periods={k: (ends[k], used[k], extra[k]) for k in used},
        plans=plans,
        days=dict(days),
        scenario_periods=dict(scenario_periods),
        scenarios={
            k: (scenario_credits[k], run_counts[k]) for k in set(scenario_credits) | set(run_counts)
        },
        runs=runs,
        run_modules={k: (v[0], v[1]) for k, v in modules.items()},
    )


async def read_models(db: asyncpg.Connection, schema: str = "public") -> Expected:
    """The read models in the oracle's shapes."""
    rows = {
        table: await db.fetch(f"SELECT * FROM {schema}.{table}")
        for table in (
            "billing_periods",
            "organization_daily_usage",
            "scenario_period_usage",
            "scenario_usage",
            "runs",
            "run_modules",
        )
    }
    o = "organization_id"
    return Expected(
        periods={
            (r[o], r["period_start"]): (r["period_end"], r["credits_used"], r["extra_credits"])
            for r in rows["billing_periods"]
        },
        plans={
            (r[o], r["period_start"]): r["plan_credits"]
            for r in rows["billing_periods"]
            if r["subscribed"]
        },
        days={(r[o], r["day"]): r["credits_used"] for r in rows["organization_daily_usage"]},
        scenario_periods={
            (r[o], r["period_start"], r["scenario_id"]): r["credits_used"]
            for r in rows["scenario_period_usage"]
        },
        scenarios={
            (r[o], r["scenario_id"]): (r["credits_used"], r["runs"]) for r in rows["scenario_usage"]
        },
        runs={(r[o], r["run_id"]): (r["scenario_id"], r["credits_used"]) for r in rows["runs"]},
        run_modules={
            (r[o], r["run_id"], r["module_id"]): (r["credits_used"], r["executions"])
            for r in rows["run_modules"]
        },
    )
