"""Where the servers are: the connection settings every service shares.

Each service has its own settings class that extends this one with its own
environment prefix for its own knobs.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConnectionSettings(BaseSettings):
    """Kafka and PostgreSQL addresses and topic names (env prefix `METERING_`)."""

    model_config = SettingsConfigDict(env_prefix="METERING_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/metering"
    """libpq-style URL of the PostgreSQL database holding the event store."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Comma-separated Kafka bootstrap servers."""

    events_topic: str = "metering.events"
    """Topic the scenario runner writes CloudEvents to."""

    dlq_topic: str = "metering.events.dlq"
    """Dead-letter topic for records that could not be accepted."""

    notifications_topic: str = "metering.notifications"
    """Topic the projector sends customer notifications (threshold crossings) to."""
