"""Proof of completeness through Kafka -> ingest -> projector -> API: every record
received has its outcome, and an event deleted behind the service's back is named."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from deploy.stack.local import Endpoints
from schemas import TypedEvent
from services.emitter import Emitter, build_event
from services.query_api.auth import sign
from tests.e2e.conftest import JWT_SECRET, Pipeline
from tests.support.waiting import eventually

ORG = "org-r"


def module_execution(event_id: str, credits: str, now: datetime) -> TypedEvent:
    return build_event(
        "com.metering.module_execution.completed.v2",
        {
            "organization_id": ORG,
            "scenario_id": "scn-1",
            "run_id": "run-1",
            "module_id": event_id,
            "app": "http",
            "action": "get",
            "operations": 1,
            "credits": credits,
            "started_at": now,
            "finished_at": now,
            "status": "success",
        },
        source="test",
        event_id=event_id,
        time=now,
    )


async def reconciliation(pipeline: Pipeline, organization: str | None = None) -> dict[str, Any]:
    token = sign(organization, JWT_SECRET, operator=organization is None)
    path = (
        "/v1/operator/reconciliation"
        if organization is None
        else f"/v1/organizations/{organization}/reconciliation"
    )
    async with httpx.AsyncClient(base_url=pipeline.api.base_url, timeout=30) as api:
        response = await api.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def summed(partitions: list[dict[str, Any]], key: str) -> int:
    return sum(int(p[key]) for p in partitions)


async def test_every_record_received_is_accounted_for_until_one_is_deleted(
    servers: Endpoints, pipeline: Pipeline, database_url: str
) -> None:
    now = datetime.now(UTC)
    events = [module_execution(f"e{n}", str(n), now) for n in range(1, 6)]
    copy = module_execution("e1", "1", now)  # an exact copy: a duplicate
    clash = module_execution("e2", "99", now)  # the same id, another payload: a conflict
    async with Emitter(servers.kafka_bootstrap, pipeline.topic, "test") as emitter:
        await emitter.send_many([*events, copy, clash])
    producer = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(pipeline.topic, b"not json", key=ORG.encode())
    finally:
        await producer.stop()
    received = f'ingest_records_received_total{{topic="{pipeline.topic}"}}'
    await eventually(lambda: pipeline.ingest.metrics().get(received, 0) >= 8)

    async def caught_up() -> bool:
        return bool((await reconciliation(pipeline))["projection"]["pending"] == 0)

    await eventually(caught_up, timeout_s=30)
    whole = await reconciliation(pipeline)
    mine = await reconciliation(pipeline, ORG)

    partitions = whole["partitions"]
    assert {p["topic"] for p in partitions} == {pipeline.topic}
    assert summed(partitions, "received") == 8
    assert summed(partitions, "stored") == 5
    assert summed(partitions, "duplicates") == 1
    assert summed(partitions, "conflicts") == 1
    assert [p["rejected"] for p in partitions if p["rejected"]] == [{"not_json": 1}]
    assert all(p["ok"] and p["gaps"] == [] and p["unaccounted"] == 0 for p in partitions)
    assert whole["projection"] | {"pending": 0} == {
        "stored": 5,
        "projected": 5,
        "pending": 0,
        "quarantined": 0,
        "unbacked_events": [],
        "ok": True,
    }
    assert whole["totals"] == {"mismatches": [], "ok": True}
    assert whole["ok"] is True
    assert mine["ok"] is True
    assert mine["projection"]["stored"] == 5
    assert mine["projection"]["unbacked_events"] == []

    db = await asyncpg.connect(database_url)
    try:
        gone = await db.fetchrow(
            "DELETE FROM events WHERE id = 'e3' RETURNING kafka_partition, kafka_offset"
        )
    finally:
        await db.close()
    assert gone is not None
    after = await reconciliation(pipeline)
    mine_after = await reconciliation(pipeline, ORG)

    assert after["ok"] is False
    broken = [p for p in after["partitions"] if not p["ok"]]
    assert [(p["partition"], p["unaccounted"], p["unaccounted_offsets"]) for p in broken] == [
        (gone["kafka_partition"], 1, [gone["kafka_offset"]])
    ]
    assert summed(after["partitions"], "stored") == 4
    assert mine_after["ok"] is False
    assert mine_after["projection"]["unbacked_events"] == [["test", "e3"]]
    assert json.dumps(mine_after).count("e3") == 1
