"""Migrations build the whole schema on an empty database, and only once."""

from __future__ import annotations

import re

import psycopg

from services.infra.migrations.runner import current_revision, migrate

EXPECTED_TABLES = {
    "events",
    "events_default",
    "event_keys",
    "event_archives",
    "rejected_events",
    "ingest_ranges",
    "ingest_duplicates",
    "projection_checkpoints",
    "projector_quarantine",
    "organization_versions",
    "organizations",
    "billing_periods",
    "plan_changes",
    "credit_purchases",
    "scenario_budgets",
    "organization_daily_usage",
    "scenario_usage",
    "scenario_period_usage",
    "scenario_daily_usage",
    "scenario_module_period_usage",
    "runs",
    "run_modules",
    "module_executions",
    "auto_purchase_state",
    "auto_purchase_outbox",
    "notification_state",
    "notification_outbox",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
}


MONTH = re.compile(r"events_\d{4}_\d{2}")


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    # The event store's monthly partitions (events_YYYY_MM) depend on the day.
    return {row[0] for row in rows if not MONTH.fullmatch(row[0])} - {"alembic_version"}


def test_migrations_apply_to_an_empty_database(empty_database_url: str) -> None:
    assert tables(empty_database_url) == set()

    migrate(empty_database_url)

    assert tables(empty_database_url) == EXPECTED_TABLES
    assert current_revision(empty_database_url) == "0019_notifications"


def test_migrating_twice_changes_nothing(empty_database_url: str) -> None:
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        conn.execute(
            "INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256)"
            " VALUES ('runner', 'e1', 't', 'org', now(), '{}', '\\x00')"
        )

    migrate(empty_database_url)

    with psycopg.connect(empty_database_url) as conn:
        count = conn.execute("SELECT count(*) FROM events").fetchone()
    assert count == (1,)
    assert tables(empty_database_url) == EXPECTED_TABLES


def test_event_store_refuses_a_second_event_with_the_same_source_and_id(
    database_url: str,
) -> None:
    insert = (
        "INSERT INTO events (source, id, type, organization_id, time, data, payload_sha256)"
        " VALUES ('runner', 'e1', 't', 'org', now(), '{}', '\\x00')"
    )
    with psycopg.connect(database_url) as conn:
        conn.execute(insert)
        conn.commit()
        try:
            conn.execute(insert)
        except psycopg.errors.UniqueViolation:
            conn.rollback()
        else:
            raise AssertionError("a duplicate (source, id) was stored")
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)


def test_downgrade_to_nothing_and_back(empty_database_url: str) -> None:
    from alembic import command

    from services.infra.migrations.runner import alembic_config

    migrate(empty_database_url)
    command.downgrade(alembic_config(empty_database_url), "base")
    assert tables(empty_database_url) == set()
    migrate(empty_database_url)
    assert tables(empty_database_url) == EXPECTED_TABLES
