"""Settings of the projector (env prefix `METERING_PROJECTOR_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProjectorSettings(BaseSettings):
    """Knobs of the projector; the database comes from ConnectionSettings."""

    model_config = SettingsConfigDict(env_prefix="METERING_PROJECTOR_", extra="ignore")

    batch_size: int = 5000
    """Most events applied in one transaction."""

    poll_interval_s: float = 1.0
    """Longest wait for new events when no notification arrives (LISTEN/NOTIFY is the fast path)."""

    lock_retry_s: float = 2.0
    """How often a standby instance tries to take over a shard, and a busy one checks
    whether it holds more than its share."""

    shards: int = Field(default=1, ge=1, le=256)
    """Shards the projection is split in, by organization (services/projector/shards.py).
    Every projector process of a store must agree; change it with `metering projector
    reshard`."""

    auto_purchase: bool = True
    """Decide and emit automatic credit purchases (one active projector does)."""

    metrics_port: int = 9102
    """Port of the Prometheus /metrics endpoint (0: none)."""
