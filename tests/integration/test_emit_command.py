"""`metering emit` sends well-formed, keyed CloudEvents, and refuses bad ones before sending."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from deploy.stack.local import Endpoints
from tests.support.kafka import first_record

PURCHASE = {
    "organization_id": "org-9",
    "credits": "500",
    "purchase": "manual",
    "purchased_at": "2026-11-24T10:00:00Z",
}


def emit(servers: Endpoints, topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "METERING_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        "METERING_EVENTS_TOPIC": topic,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "emit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_emit_sends_a_structured_cloudevent_keyed_by_organization(
    servers: Endpoints, new_topic: str
) -> None:
    sent = emit(
        servers, new_topic, "com.metering.credits.purchased.v1", "--data", json.dumps(PURCHASE)
    )
    assert sent.returncode == 0, sent.stderr

    record = await first_record(servers.kafka_bootstrap, new_topic)
    assert record.key == b"org-9"
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    envelope = json.loads(record.value)
    assert envelope["subject"] == "org-9"
    assert envelope["type"] == "com.metering.credits.purchased.v1"
    assert envelope["data"] == PURCHASE


def test_emit_refuses_an_invalid_event_and_sends_nothing(
    servers: Endpoints, new_topic: str
) -> None:
    bad = {**PURCHASE, "credits": "5.0000001"}

    refused = emit(
        servers, new_topic, "com.metering.credits.purchased.v1", "--data", json.dumps(bad)
    )

    assert refused.returncode == 2
    assert "credits" in refused.stdout
