"""Scenario budgets through Kafka -> ingest -> projector -> API: /scenarios and
/scenarios/{id} show each scenario's budget and how much of it the period used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from deploy.stack.local import Endpoints
from schemas import TypedEvent
from services.emitter import Emitter
from services.query_api.auth import sign
from tests.e2e.conftest import JWT_SECRET, Pipeline
from tests.support.events import budget_set, module_execution
from tests.support.waiting import eventually

ORG = "org-b"


def budget(event_id: str, at: datetime, credits: str | None) -> TypedEvent:
    return budget_set(ORG, "scn-1", event_id, at, credits)


async def send(servers: Endpoints, pipeline: Pipeline, events: list[TypedEvent]) -> None:
    metric = 'projector_events_total{projection="usage"}'
    seen = pipeline.projector.metrics().get(metric, 0)
    async with Emitter(servers.kafka_bootstrap, pipeline.topic, "test") as emitter:
        await emitter.send_many(events)
    await eventually(lambda: pipeline.projector.metrics().get(metric, 0) >= seen + len(events))


async def scenario(pipeline: Pipeline) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = {"Authorization": f"Bearer {sign(ORG, JWT_SECRET)}"}
    async with httpx.AsyncClient(base_url=pipeline.api.base_url, headers=headers) as api:
        listed = (await api.get(f"/v1/organizations/{ORG}/scenarios")).json()["items"]
        one = (await api.get(f"/v1/organizations/{ORG}/scenarios/scn-1")).json()
    [item] = [i for i in listed if i["scenario_id"] == "scn-1"]
    return item, one


async def test_a_scenarios_budget_shows_with_the_share_used_and_the_latest_wins(
    servers: Endpoints, pipeline: Pipeline
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    usage = [module_execution(ORG, i, Decimal("7.5"), scenario="scn-1", when=now) for i in range(4)]
    await send(servers, pipeline, [*usage, budget("b1", now, "40")])

    item, one = await scenario(pipeline)
    assert (item["budget_credits"], item["budget_percent_used"]) == ("40", "75")
    assert (one["budget_credits"], one["budget_percent_used"]) == ("40", "75")

    await send(servers, pipeline, [budget("b0", now - timedelta(days=1), "10")])  # older
    item, one = await scenario(pipeline)
    assert item["budget_credits"] == one["budget_credits"] == "40"

    await send(servers, pipeline, [budget("b2", now + timedelta(seconds=1), None)])  # removed
    item, one = await scenario(pipeline)
    assert (item["budget_credits"], item["budget_percent_used"]) == (None, None)
    assert (one["budget_credits"], one["budget_percent_used"]) == (None, None)


async def test_a_scenario_budgeted_before_it_ever_ran_shows_its_budget_and_nothing_used(
    servers: Endpoints, pipeline: Pipeline
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    set_ = budget_set(ORG, "scn-new", "b-new", now, "25")
    await send(servers, pipeline, [set_])

    headers = {"Authorization": f"Bearer {sign(ORG, JWT_SECRET)}"}
    async with httpx.AsyncClient(base_url=pipeline.api.base_url, headers=headers) as api:
        budgeted = await api.get(f"/v1/organizations/{ORG}/scenarios/scn-new")
        unknown = await api.get(f"/v1/organizations/{ORG}/scenarios/scn-none")

    assert budgeted.status_code == 200
    body = budgeted.json()
    assert (body["budget_credits"], body["budget_percent_used"]) == ("25", "0")
    assert (body["credits_this_period"], body["credits_all_time"], body["runs"]) == ("0", "0", 0)
    assert body["last_run_at"] is None
    assert unknown.status_code == 404
