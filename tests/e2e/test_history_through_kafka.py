"""A generated history through Kafka, ingest, projector and API, subscriptions sent last.

The billing system's events (periods, re-sent and redefined periods, plan
changes) arrive after all the usage they govern, as they do when a billing
system is slow; duplicates and conflicting copies ride along. What the API
serves must equal the oracle's figures for the set of events (issue 10, "The
proof"), and /billing-periods never lists overlapping periods.
"""

from __future__ import annotations

import random
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise

import httpx

from deploy.stack.local import Endpoints
from services.emitter import Emitter
from services.query_api.auth import sign
from tests.e2e.conftest import JWT_SECRET, Pipeline
from tests.support.generated_history import Expected, build_history, expected, stored
from tests.support.waiting import eventually

BILLING = ("com.metering.subscription.",)


async def served(api: str, organizations: list[str], oracle: Expected) -> Expected:
    """The API's figures, in the oracle's shapes."""
    found = Expected({}, {}, {}, {}, {}, {}, {})
    for org in organizations:
        headers = {"Authorization": f"Bearer {sign(org, JWT_SECRET)}"}
        async with httpx.AsyncClient(base_url=api, headers=headers, timeout=10) as client:
            base = f"/v1/organizations/{org}"
            periods = (await client.get(f"{base}/billing-periods?limit=100")).json()["periods"]
            for p in periods:
                start = datetime.fromisoformat(p["period_start"])
                found.periods[(org, start)] = (
                    datetime.fromisoformat(p["period_end"]),
                    Decimal(p["credits_used"]),
                    Decimal(p["extra_credits"]),
                )
            daily = await client.get(f"{base}/usage/daily?from=2026-04-01&to=2026-12-31")
            for d in daily.json()["days"]:
                found.days[(org, date.fromisoformat(d["day"]))] = Decimal(d["credits_used"])
            for (o, scenario), _ in oracle.scenarios.items():
                if o == org:
                    sc = (await client.get(f"{base}/scenarios/{scenario}")).json()
                    found.scenarios[(org, scenario)] = (
                        Decimal(sc["credits_all_time"]),
                        sc["runs"],
                    )
            for (o, run), _ in oracle.runs.items():
                if o == org:
                    r = (await client.get(f"{base}/runs/{run}")).json()
                    found.runs[(org, run)] = (r["scenario_id"], Decimal(r["credits_used"]))
                    for m in r["modules"]:
                        found.run_modules[(org, run, m["module_id"])] = (
                            Decimal(m["credits_used"]),
                            m["executions"],
                        )
    return found


async def test_a_history_with_its_subscriptions_sent_last_is_served_as_the_oracle_says(
    servers: Endpoints, pipeline: Pipeline
) -> None:
    rng = random.Random(10)
    history = build_history(rng, lambda low, high: high)  # the largest of everything
    sent = history.arrival(rng)
    usage = [e for e in sent if not e.type.startswith(BILLING)]
    billing = [e for e in sent if e.type.startswith(BILLING)]
    assert len(billing) >= 6
    async with Emitter(servers.kafka_bootstrap, pipeline.topic, "test") as emitter:
        await emitter.send_many(usage)
        await emitter.send_many(billing)
    events = len(stored(history.events))
    metric = 'projector_events_total{projection="usage"}'
    await eventually(lambda: pipeline.projector.metrics().get(metric, 0) >= events, timeout_s=120)

    oracle = expected(history.events)
    organizations = sorted({org for org, _ in oracle.periods})
    api = await served(pipeline.api.base_url, organizations, oracle)

    assert api.periods == oracle.periods
    assert api.days == oracle.days
    assert api.scenarios == oracle.scenarios
    assert api.runs == oracle.runs
    assert api.run_modules == oracle.run_modules
    for org in organizations:
        bounds = sorted((start, end) for (o, start), (end, _, _) in api.periods.items() if o == org)
        for (_, end), (next_start, _) in pairwise(bounds):
            assert end <= next_start, (org, bounds)
