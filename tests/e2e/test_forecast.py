"""The run-out forecast on histories sent through Kafka -> ingest -> projector, in a zone
east of UTC, against the method computed here (README "Run-out forecast")."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from deploy.stack.local import Endpoints
from schemas import TypedEvent
from services.emitter import Emitter, build_event
from services.query_api.auth import sign
from tests.e2e.conftest import JWT_SECRET, Pipeline
from tests.support.waiting import eventually

D = Decimal
ZONE_NAME = "Asia/Tokyo"
ZONE = ZoneInfo(ZONE_NAME)
STEADY, NEW, IDLE = "org-steady", "org-new", "org-idle"
STEP = D("0.000001")


@dataclass
class Sent:
    """What was sent, by local day: what the forecast must be computed from."""

    events: list[TypedEvent] = field(default_factory=list)
    used: dict[str, dict[date, Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Decimal))
    )
    scenario_used: dict[str, dict[date, Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Decimal))
    )
    scenario_floor: dict[str, dict[date, Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Decimal))
    )
    plan: dict[str, Decimal] = field(default_factory=dict)

    def subscribe(self, organization: str, plan_credits: Decimal, now: datetime) -> None:
        self.plan[organization] = plan_credits
        start = now - timedelta(days=10)
        self.events.append(
            build_event(
                "com.metering.subscription.period_started.v1",
                {
                    "organization_id": organization,
                    "plan": "pro",
                    "plan_credits": str(plan_credits),
                    "period_start": start,
                    "period_end": now + timedelta(days=20),
                    "timezone": ZONE_NAME,
                },
                source="test",
                event_id=f"sub-{organization}",
                time=start,
            )
        )

    def run(
        self,
        organization: str,
        scenario: str,
        run: str,
        trigger: str,
        at: datetime,
        credits: list[Decimal],
    ) -> None:
        """A run at `at` whose modules use `credits`, with its start event."""
        data = {"organization_id": organization, "scenario_id": scenario, "run_id": run}
        self.events.append(
            build_event(
                "com.metering.scenario_run.started.v1",
                {**data, "trigger": trigger, "started_at": at},
                source="test",
                event_id=f"start-{run}",
                time=at,
            )
        )
        for n, amount in enumerate(credits, start=1):
            self.events.append(
                build_event(
                    "com.metering.module_execution.completed.v2",
                    {
                        **data,
                        "module_id": str(n),
                        "app": "http",
                        "action": "get",
                        "operations": 1,
                        "credits": str(amount),
                        "started_at": at,
                        "finished_at": at,
                        "status": "success",
                    },
                    source="test",
                    event_id=f"{run}-{n}",
                    time=at,
                )
            )
        day = at.astimezone(ZONE).date()
        self.used[organization][day] += sum(credits, D(0))
        self.scenario_used[scenario][day] += sum(credits, D(0))
        if trigger == "scheduled":
            self.scenario_floor[scenario][day] += min(sum(credits, D(0)), D(1))


def history(now: datetime) -> Sent:
    sent = Sent()
    for organization, plan in ((STEADY, D(1000)), (NEW, D(100)), (IDLE, D(100))):
        sent.subscribe(organization, plan, now)
    local_today = now.astimezone(ZONE).date()
    for back in range(1, 9):  # days 7 and 8 back are outside the window
        noon = datetime.combine(local_today - timedelta(days=back), time(12), ZONE)
        sent.run(STEADY, "scn-a", f"a-{back}", "scheduled", noon, [D(1), D(29)])
        sent.run(STEADY, "scn-b", f"b-{back}", "manual", noon, [D(40)])
    recent = now - timedelta(minutes=1)
    sent.run(STEADY, "scn-a", "a-0", "scheduled", recent, [D("0.5")])  # floor: 0.5, not 1
    sent.run(NEW, "scn-n", "n-0", "webhook", recent, [D(5)])
    return sent


def weighed(per_day: dict[date, Decimal], first_usage: date, forecast_at: datetime) -> Decimal:
    """The README's method: the last 7 local days, today weighing 7 down to 1, today
    counting for the share of it gone (at least an hour), none before the first usage."""
    today = forecast_at.astimezone(ZONE).date()
    midnight = datetime.combine(today, time(), ZONE)  # Tokyo keeps 24-hour days
    gone = D((forecast_at - midnight) // timedelta(seconds=1)) / D(86_400)
    used = passed = D(0)
    for back in range(7):
        day = today - timedelta(days=back)
        if day >= first_usage:
            used += (7 - back) * per_day.get(day, D(0))
            passed += (7 - back) * (max(gone, D(1) / 24) if back == 0 else D(1))
    return (used / passed).quantize(STEP)


@dataclass
class World:
    api: str
    now: datetime
    sent: Sent


@pytest.fixture
async def world(servers: Endpoints, pipeline: Pipeline) -> World:
    now = datetime.now(UTC)
    sent = history(now)
    async with Emitter(servers.kafka_bootstrap, pipeline.topic, "test") as emitter:
        await emitter.send_many(sent.events)
    metric = 'projector_events_total{projection="usage"}'
    await eventually(lambda: pipeline.projector.metrics().get(metric, 0) >= len(sent.events))
    return World(pipeline.api.base_url, now, sent)


async def get(world: World, organization: str, path: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {sign(organization, JWT_SECRET)}"}
    async with httpx.AsyncClient(base_url=world.api, headers=headers, timeout=10) as api:
        response = await api.get(f"/v1/organizations/{organization}{path}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_steady_burn_runs_out_before_the_reset_and_names_its_scenarios(
    world: World,
) -> None:
    forecast = await get(world, STEADY, "/forecast")

    at = datetime.fromisoformat(forecast["forecast_at"])
    assert world.now - timedelta(minutes=1) < at <= datetime.now(UTC)
    assert at.second == at.microsecond == 0
    today = at.astimezone(ZONE).date()
    assert date.fromisoformat(forecast["last_day"]) == today
    assert date.fromisoformat(forecast["first_day"]) == today - timedelta(days=6)
    used = world.sent.used[STEADY]
    first = min(used)
    rate = weighed(used, first, at)
    assert D(forecast["burn_rate_per_day"]) == rate
    remaining = D(1000) - sum(used.values(), D(0))
    assert D(forecast["credits_remaining"]) == remaining
    runs_out = datetime.fromisoformat(forecast["runs_out_at"])
    until = timedelta(microseconds=int(remaining / rate * 86_400_000_000))
    assert abs(runs_out - (at + until)) < timedelta(seconds=1)
    reset = datetime.fromisoformat(forecast["reset_at"])
    assert forecast["runs_out_before_reset"] is (runs_out < reset)
    assert forecast["runs_out_before_reset"]
    to_reset = D((reset - at) // timedelta(microseconds=1)) / D(86_400_000_000)
    assert abs(D(forecast["credits_needed_to_reset"]) - (rate * to_reset - remaining)) <= STEP

    scenarios = {s["scenario_id"]: s for s in forecast["scenarios"]}
    assert [s["scenario_id"] for s in forecast["scenarios"]] == ["scn-b", "scn-a"]  # 40 > 30 a day
    for scenario, burn in scenarios.items():
        assert D(burn["burn_rate_per_day"]) == weighed(
            world.sent.scenario_used[scenario], first, at
        )
        floor = world.sent.scenario_floor.get(scenario, {})
        assert D(burn["floor_per_day"]) == (weighed(floor, first, at) if floor else 0)
    assert D(scenarios["scn-b"]["floor_per_day"]) == 0  # manual runs have no floor
    assert D(scenarios["scn-a"]["floor_per_day"]) > 0
    shares = sum((D(s["percent_of_burn"]) for s in scenarios.values()), D(0))
    assert abs(shares - 100) <= D("0.02")
    assert D(forecast["floor_per_day"]) == D(scenarios["scn-a"]["floor_per_day"])
    parts = sum((D(s["burn_rate_per_day"]) for s in scenarios.values()), D(0))
    assert abs(parts - rate) <= 2 * STEP  # each rounded to 0.000001

    fewer = await get(world, STEADY, "/forecast?limit=1")
    assert [s["scenario_id"] for s in fewer["scenarios"]] == ["scn-b"]


async def test_usage_carries_the_forecasts_run_out(world: World) -> None:
    for _ in range(3):  # the two answers must be made in the same minute
        forecast = await get(world, STEADY, "/forecast")
        usage = await get(world, STEADY, "/usage")
        again = await get(world, STEADY, "/forecast")
        if forecast["forecast_at"] == again["forecast_at"]:
            break
    assert usage["runs_out_at"] == forecast["runs_out_at"] is not None
    idle = await get(world, IDLE, "/usage")
    assert idle["runs_out_at"] is None


async def test_a_new_organization_is_forecast_from_its_one_day(world: World) -> None:
    forecast = await get(world, NEW, "/forecast")

    at = datetime.fromisoformat(forecast["forecast_at"])
    used = world.sent.used[NEW]
    assert len(used) == 1
    rate = weighed(used, min(used), at)
    assert D(forecast["burn_rate_per_day"]) == rate > 0
    assert forecast["runs_out_at"] is not None
    assert [s["scenario_id"] for s in forecast["scenarios"]] == ["scn-n"]
    assert D(forecast["floor_per_day"]) == 0  # a webhook run has no floor


async def test_an_organization_without_usage_never_runs_out(world: World) -> None:
    forecast = await get(world, IDLE, "/forecast")

    assert D(forecast["burn_rate_per_day"]) == 0
    assert forecast["runs_out_at"] is None
    assert forecast["runs_out_before_reset"] is False
    assert D(forecast["credits_needed_to_reset"]) == 0
    assert D(forecast["credits_remaining"]) == 100
    assert forecast["scenarios"] == []


async def test_the_run_out_gauge_counts_down_to_the_forecast(
    world: World, pipeline: Pipeline
) -> None:
    forecast = await get(world, STEADY, "/forecast")
    gauges = pipeline.api.metrics()  # usage gauges from 5 % used (tests.support.processes)
    read_at = datetime.now(UTC)

    runs_out = datetime.fromisoformat(forecast["runs_out_at"])
    seconds = gauges[f'credits_run_out_before_reset_seconds{{organization="{STEADY}"}}']
    assert abs(D(str(seconds)) - D((runs_out - read_at) // timedelta(seconds=1))) < 120
    assert f'credits_run_out_before_reset_seconds{{organization="{IDLE}"}}' not in gauges
