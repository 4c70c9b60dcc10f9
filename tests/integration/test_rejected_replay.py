"""Dead letters can be listed and sent again, corrected or not, through the normal path (#11)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner, Result

from deploy.stack.local import Endpoints
from services.cli import app
from tests.integration.test_ingest_service import count, ingest  # noqa: F401 - the fixture
from tests.support.events import module_execution
from tests.support.processes import IngestProcess
from tests.support.waiting import eventually


async def cli(args: list[str]) -> Result:
    """`metering ARGS` in a thread (it runs its own event loop), on a wide terminal."""
    return await asyncio.to_thread(CliRunner().invoke, app, args, env={"COLUMNS": "250"})


async def test_a_refused_record_is_listed_and_replayed_corrected_then_deduplicated(
    servers: Endpoints,
    new_topic: str,
    ingest: IngestProcess,  # noqa: F811
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = module_execution("org-1", 1, Decimal("2.5"))
    document = event.model_dump(mode="json", exclude_none=True)
    broken = {**document, "data": {**document["data"], "credits": "-1"}}
    ingest.start()
    producer = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            new_topic,
            json.dumps(broken).encode(),
            key=b"org-1",
            headers=[("content-type", b"application/cloudevents+json"), ("x-bin", b"\x00\xff")],
        )
    finally:
        await producer.stop()
    await eventually(lambda: _at_least(db, "rejected_events", 1))
    rejection_id = int(await db.fetchval("SELECT rejection_id FROM rejected_events"))

    monkeypatch.setenv("METERING_DATABASE_URL", database_url)
    monkeypatch.setenv("METERING_KAFKA_BOOTSTRAP", servers.kafka_bootstrap)
    monkeypatch.setenv("METERING_EVENTS_TOPIC", new_topic)
    listed = await cli(["rejected", "list", "--reason", "invalid_data"])
    assert listed.exit_code == 0, listed.output
    assert "invalid_data" in listed.output, listed.output
    assert "credits" in listed.output  # the reason names the field
    assert (await cli(["rejected", "replay", "424242"])).exit_code == 2

    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(document))
    replayed = await cli(["rejected", "replay", str(rejection_id), "--value-file", str(fixed)])
    assert replayed.exit_code == 0, replayed.output
    await eventually(lambda: _at_least(db, "events", 1))
    stored = await db.fetchrow("SELECT id, data->>'credits' AS credits FROM events")
    assert stored is not None
    assert (stored["id"], stored["credits"]) == ("evt-1", "2.5")

    again = await cli(["rejected", "replay", str(rejection_id), "--value-file", str(fixed)])
    assert again.exit_code == 0, again.output
    await asyncio.sleep(3)  # a second copy is a duplicate: counted, not stored
    assert await count(db, "events") == 1
    headers = await db.fetchval("SELECT kafka_headers FROM rejected_events")
    assert json.loads(headers)["x-bin"] == {"base64": "AP8="}


async def _at_least(db: asyncpg.Connection, table: str, n: int) -> bool:
    return await count(db, table) >= n
