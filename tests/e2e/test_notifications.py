"""Customer notifications through Kafka -> ingest -> projector -> the notifications topic,
a webhook registered with `metering webhooks add` (signed as Standard Webhooks says,
retried until it answers 2xx) and the API's notifications and delivery log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from deploy.stack.local import Endpoints
from schemas.notifications import notification_event
from services.emitter import Emitter
from services.query_api.auth import sign
from tests.e2e.conftest import JWT_SECRET
from tests.integration.test_ingest_service import read_topic
from tests.support.events import (
    auto_purchase_configured,
    budget_set,
    module_execution,
    period_started,
)
from tests.support.processes import ApiProcess, ProjectorProcess, ingest_on, running
from tests.support.waiting import eventually
from tests.support.webhooks import Receiver, receiving

ORG = "org-n"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving([503]) as server:  # the first attempt fails: the second must come
        yield server


def metering(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**os.environ, "METERING_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def processes(
    servers: Endpoints, database_url: str, new_topic: str, tmp_path: Path
) -> Iterator[tuple[ProjectorProcess, ApiProcess]]:
    projector = ProjectorProcess(
        database_url,
        tmp_path,
        kafka_bootstrap=servers.kafka_bootstrap,
        topic=new_topic,
        notifications_topic=f"{new_topic}.notifications",
        webhook_retry_s=0.2,
        webhook_retry_window_s=3,
    )
    api = ApiProcess(database_url, tmp_path, JWT_SECRET)
    with running(ingest_on(servers, database_url, new_topic, tmp_path), projector, api):
        yield projector, api


async def test_a_crossing_reaches_the_topic_and_a_signed_webhook_and_the_api_lists_both(
    servers: Endpoints,
    database_url: str,
    new_topic: str,
    db: asyncpg.Connection,
    receiver: Receiver,
    processes: tuple[ProjectorProcess, ApiProcess],
) -> None:
    added = metering(database_url, "webhooks", "add", ORG, receiver.url)
    assert added.returncode == 0, added.stderr
    secret = added.stdout.split("secret: ")[1].strip()
    dead = metering(database_url, "webhooks", "add", ORG, "http://127.0.0.1:9/nobody")
    assert dead.returncode == 0, dead.stderr
    again = metering(database_url, "webhooks", "add", ORG, receiver.url)
    assert again.returncode == 2
    assert "registered for org-n already" in again.stdout
    for organization, url, why in [
        ("not an id", receiver.url, "is not an organization id"),
        (ORG, "ftp://hooks.example/x", "is not an http:// or https:// URL"),
        (ORG, "http://[::1", "is not an http:// or https:// URL"),
    ]:
        refused = metering(database_url, "webhooks", "add", organization, url)
        assert (refused.returncode, why in refused.stdout) == (2, True), refused.stdout
    now = datetime.now(UTC).replace(microsecond=0)

    async with Emitter(servers.kafka_bootstrap, new_topic, "test") as emitter:
        await emitter.send(
            period_started(ORG, "100", now - timedelta(days=3), now + timedelta(days=27))
        )
        await emitter.send_many(
            [module_execution(ORG, i, Decimal(8), when=now - timedelta(hours=1)) for i in range(10)]
        )  # 80 of 100

    [record] = await read_topic(servers.kafka_bootstrap, f"{new_topic}.notifications", 1)
    sent = json.loads(record.value)  # type: ignore[attr-defined]
    assert record.key == ORG.encode()  # type: ignore[attr-defined]
    assert sent["type"] == "com.metering.credits.threshold_crossed.v1"
    assert (sent["data"]["threshold_percent"], sent["data"]["used_credits"]) == (75, "80")

    await eventually(lambda: len(receiver.requests) >= 2, timeout_s=30)
    (_, first_headers, first_body, first_status), (_, headers, body, status) = receiver.requests[:2]
    assert (first_status, status) == (503, 200)
    assert first_headers["webhook-id"] == headers["webhook-id"] == sent["id"]
    assert first_body == body
    assert Webhook(secret).verify(body, headers) == sent  # the same CloudEvent, signed

    token = sign(ORG, JWT_SECRET)
    async with httpx.AsyncClient(
        base_url=processes[1].base_url, headers={"Authorization": f"Bearer {token}"}
    ) as api:

        async def settled() -> bool:
            answer = (await api.get(f"/v1/organizations/{ORG}/webhooks/deliveries")).json()
            return all(d["status"] != "pending" for d in answer["deliveries"])

        await eventually(settled, timeout_s=30)
        notifications = (await api.get(f"/v1/organizations/{ORG}/notifications")).json()
        deliveries = (await api.get(f"/v1/organizations/{ORG}/webhooks/deliveries")).json()
        webhooks = (await api.get(f"/v1/organizations/{ORG}/webhooks")).json()
        other = await api.get("/v1/organizations/org-other/webhooks/deliveries")

    [notification] = notifications["notifications"]
    assert (notification["id"], notification["data"]) == (sent["id"], sent["data"])
    assert notification["sent_at"] is not None
    assert sorted(w["url"] for w in webhooks["webhooks"]) == sorted(
        [receiver.url, "http://127.0.0.1:9/nobody"]
    )
    by_url = {d["url"]: d for d in deliveries["deliveries"]}
    delivered = by_url[receiver.url]
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 2)
    assert [a["status_code"] for a in delivered["log"]] == [503, 200]
    failed = by_url["http://127.0.0.1:9/nobody"]
    assert failed["status"] == "failed"  # nobody answers; its 3 s window is over
    assert failed["attempts"] >= 2
    assert all(a["status_code"] is None and a["error"] for a in failed["log"])
    assert other.status_code == 403  # another organization's log needs its own token
    assert processes[0].metrics()['projector_webhook_attempts_total{outcome="delivered"}'] == 1


async def test_a_budget_and_the_auto_purchase_cap_reach_the_topic_as_valid_notifications(
    servers: Endpoints, new_topic: str, processes: tuple[ProjectorProcess, ApiProcess]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=3)
    async with Emitter(servers.kafka_bootstrap, new_topic, "test") as emitter:
        await emitter.send_many(
            [
                period_started(ORG, "100", start, now + timedelta(days=27)),
                # A pack of 50 below 30 left, but at most 40 a period: never bought.
                auto_purchase_configured(ORG, "auto-1", start, "30", "50", cap="40"),
                budget_set(ORG, "scn-1", "budget-1", start, "50"),
            ]
        )
        await emitter.send_many(
            [module_execution(ORG, i, Decimal(8), when=now - timedelta(hours=1)) for i in range(10)]
        )  # 80 of 100, all in scn-1: 160 % of its budget, 20 left

    records = await read_topic(servers.kafka_bootstrap, f"{new_topic}.notifications", 4)
    sent = {}
    for record in records:
        event = json.loads(record.value)  # type: ignore[attr-defined]
        notification_event(
            event["type"], event["data"], event_id=event["id"], source="t", time=now
        )  # valid under its contract
        sent[event["id"].split(":", 3)[0] + ":" + event["id"].rsplit(":", 2)[1]] = event["data"]
    assert sorted(sent) == ["auto_purchase_cap:100", "budget:100", "budget:90", "credits:75"]
    assert (sent["budget:90"]["scenario_id"], sent["budget:90"]["total_credits"]) == ("scn-1", "50")
    assert (
        sent["auto_purchase_cap:100"]["cap_credits"],
        sent["auto_purchase_cap:100"]["bought_credits"],
    ) == ("40", "0")
