"""Refusals and repairs are kept for their retention, then purged; held and dropped never (#14)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import ValidationError
from typer.testing import CliRunner

from deploy.stack.local import Endpoints
from services.cli import app
from services.infra.topics import DAY_MS, ensure_topics
from services.projector.webhooks import add_endpoint
from services.retention import RetentionSettings, purge_expired, purge_periodically
from tests.support.waiting import eventually

NOW = datetime.now(UTC)


async def reject(db: asyncpg.Connection, offset: int, days_ago: float) -> None:
    await db.execute(
        "INSERT INTO rejected_events (rejected_at, reason_code, reason, kafka_topic, "
        "kafka_partition, kafka_offset, raw) VALUES ($1, 'not_json', 'not JSON', 'events', 0, "
        "$2, 'x')",
        NOW - timedelta(days=days_ago),
        offset,
    )


async def park(db: asyncpg.Connection, position: int, how: str | None, days_ago: float) -> None:
    released = NOW - timedelta(days=days_ago) if how else None
    await db.execute(
        "INSERT INTO projector_quarantine (position, organization_id, source, id, type, "
        "sqlstate, error, quarantined_at, released_at, released_how) "
        "VALUES ($1, 'org-1', 's', $2, 't', '23514', 'refused', $3, $4, $5)",
        position,
        f"e-{position}",
        NOW - timedelta(days=days_ago + 1),
        released,
        how,
    )


async def offsets(db: asyncpg.Connection) -> list[int]:
    rows = await db.fetch("SELECT kafka_offset FROM rejected_events ORDER BY kafka_offset")
    return [row[0] for row in rows]


async def test_rejected_records_past_their_retention_go_a_chunk_at_a_time(
    db: asyncpg.Connection,
) -> None:
    for offset, days_ago in enumerate([40, 31, 45, 100, 30.5, 29, 1]):
        await reject(db, offset, days_ago)
    settings = RetentionSettings(rejected_days=30, chunk=2)
    assert await purge_expired(db, "rejected_events", settings, NOW) == 5
    assert await offsets(db) == [5, 6]
    assert await purge_expired(db, "rejected_events", settings, NOW) == 0


async def test_a_retention_left_empty_keeps_for_ever(db: asyncpg.Connection) -> None:
    await reject(db, 0, 4000)
    assert await purge_expired(db, "rejected_events", RetentionSettings(rejected_days=None)) == 0
    assert await offsets(db) == [0]


async def test_only_replayed_quarantine_records_are_purged_never_held_or_dropped(
    db: asyncpg.Connection,
) -> None:
    await park(db, 1, None, 400)  # held: its event waits for an operator
    await park(db, 2, "dropped", 400)  # a decision every rebuild honours
    await park(db, 3, "replayed", 400)
    await park(db, 4, "replayed", 10)
    settings = RetentionSettings(replayed_days=90)
    assert await purge_expired(db, "projector_quarantine", settings, NOW) == 1
    left = await db.fetch("SELECT position FROM projector_quarantine ORDER BY position")
    assert [row[0] for row in left] == [1, 2, 4]


def test_a_retention_below_one_day_is_refused_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METERING_RETENTION_REJECTED_DAYS", "0")
    with pytest.raises(ValidationError, match="rejected_days"):
        RetentionSettings()
    monkeypatch.setenv("METERING_RETENTION_REJECTED_DAYS", "")
    assert RetentionSettings().rejected_days is None


async def test_the_services_purge_on_schedule_and_a_failure_does_not_stop_them(
    db: asyncpg.Connection, database_url: str
) -> None:
    await reject(db, 0, 60)
    purged: list[int] = []
    settings = RetentionSettings(rejected_days=30, interval_s=0.05)
    running = asyncio.create_task(
        purge_periodically(database_url, "rejected_events", settings, purged.append)
    )
    unreachable = database_url.rsplit("/", 1)[0] + "/no_such_database"
    failing = asyncio.create_task(
        purge_periodically(unreachable, "rejected_events", settings, purged.append)
    )
    try:
        await eventually(lambda: _empty(db), timeout_s=10)
        await asyncio.sleep(0.3)
        assert not failing.done(), "a purge that fails must be tried again, not end the task"
        assert sum(purged) == 1
    finally:
        running.cancel()
        failing.cancel()


async def _empty(db: asyncpg.Connection) -> bool:
    return not await offsets(db)


async def test_metering_purge_purges_now(
    db: asyncpg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await reject(db, 0, 60)
    await park(db, 9, "replayed", 200)
    monkeypatch.setenv("METERING_DATABASE_URL", database_url)
    result = await asyncio.to_thread(CliRunner().invoke, app, ["purge"])
    assert result.exit_code == 0, result.output
    assert "rejected_events: 1 rows purged" in result.output
    assert "projector_quarantine: 1 rows purged" in result.output
    assert await offsets(db) == []


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [resource] = response.resources
    return {entry[0]: entry[1] for entry in resource[4]}


async def test_the_dead_letter_topic_keeps_its_records_for_its_retention(
    servers: Endpoints,
) -> None:
    topic = f"test.retention.{NOW.timestamp():.0f}.dlq"
    await ensure_topics(servers.kafka_bootstrap, [topic], retention_days={topic: 7})
    config = await topic_config(servers.kafka_bootstrap, topic)
    assert config["retention.ms"] == str(7 * DAY_MS)
    assert config["message.timestamp.type"] == "LogAppendTime"
    # An operator sets something else on the topic: a restart with another retention
    # changes the retention and keeps the rest (AlterConfigs replaces what was set).
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {**config_set(config), **OPERATOR})]
        )
    finally:
        await admin.close()
    await ensure_topics(servers.kafka_bootstrap, [topic], retention_days={topic: 3})
    config = await topic_config(servers.kafka_bootstrap, topic)
    assert config["retention.ms"] == str(3 * DAY_MS)
    assert config["message.timestamp.type"] == "LogAppendTime"
    assert config["max.message.bytes"] == OPERATOR["max.message.bytes"]


OPERATOR = {"max.message.bytes": "2000000"}


def config_set(config: dict[str, str]) -> dict[str, str]:
    return {k: config[k] for k in ("retention.ms", "message.timestamp.type")}


async def test_sent_notifications_past_their_retention_go_with_their_delivery_log(
    db: asyncpg.Connection,
) -> None:
    endpoint, _ = await add_endpoint(db, "org-1", "https://hooks.example/a")

    async def notified(n: int, days_ago: float, sent: bool, status: str) -> None:
        at = NOW - timedelta(days=days_ago)
        await db.execute(
            "INSERT INTO notification_outbox (event_id, organization_id, type, data, decided_at,"
            " sent_at) VALUES ($1, 'org-1', 't', '{}', $2, $3)",
            f"n-{n}",
            at,
            at if sent else None,
        )
        await db.execute(
            "INSERT INTO webhook_deliveries (event_id, endpoint_id, organization_id, status,"
            " created_at, attempts) VALUES ($1, $2, 'org-1', $3, $4, 1)",
            f"n-{n}",
            endpoint,
            status,
            at,
        )
        await db.execute(
            "INSERT INTO webhook_attempts (event_id, endpoint_id, attempt, attempted_at,"
            " duration_ms, status_code) VALUES ($1, $2, 1, $3, 5, 200)",
            f"n-{n}",
            endpoint,
            at,
        )

    await notified(1, 400, True, "delivered")
    await notified(2, 400, True, "failed")
    await notified(3, 400, False, "delivered")  # not on the topic yet: kept
    await notified(4, 400, True, "pending")  # still being retried: kept
    await notified(5, 10, True, "delivered")
    settings = RetentionSettings(notifications_days=365)

    assert await purge_expired(db, "notification_outbox", settings, NOW) == 2

    left = await db.fetch("SELECT event_id FROM notification_outbox ORDER BY event_id")
    assert [r[0] for r in left] == ["n-3", "n-4", "n-5"]
    logged = await db.fetch("SELECT DISTINCT event_id FROM webhook_attempts ORDER BY event_id")
    assert [r[0] for r in logged] == ["n-3", "n-4", "n-5"]
