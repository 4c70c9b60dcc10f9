"""Settings of the ingest service (env prefix `METERING_INGEST_`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    """Knobs of the ingest service; the servers come from ConnectionSettings."""

    model_config = SettingsConfigDict(env_prefix="METERING_INGEST_", extra="ignore")

    group_id: str = "metering-ingest"
    """Kafka consumer group; run more processes with the same id to scale out."""

    instance_id: str | None = None
    """Static group membership (KIP-345): a stable id per process, such as its pod name.

    A process killed and restarted with the same id gets its partitions back at
    once; without one, its partitions wait `session_timeout_ms` for the dead
    member to be dropped. Two running processes must never share an id.
    """

    session_timeout_ms: int = 10_000
    """How long the group waits for a silent member before giving its partitions away."""

    max_batch: int = 5000
    """Most records appended in one transaction (bounds memory per batch)."""

    batch_timeout_ms: int = 200
    """How long to wait for a batch to fill before appending what there is."""

    fetch_max_bytes: int = 8 * 1024 * 1024
    """Most bytes the consumer prefetches per fetch (bounds memory with volume)."""

    max_record_bytes: int = 256 * 1024
    """Records larger than this are rejected as oversized."""

    max_future_s: float = 300.0
    """Events whose time is further ahead of now than this are rejected (clock skew)."""

    retry_max_s: float = 5.0
    """Longest pause between retries while PostgreSQL or Kafka is away."""

    metrics_port: int = 9101
    """Port of the Prometheus /metrics endpoint (0: none)."""

    graceful_timeout_s: float = 15.0
    """On SIGTERM, how long the current batch may take before it is abandoned."""
