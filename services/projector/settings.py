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

    notifications: bool = True
    """Decide customer notifications (threshold crossings) and deliver them to the
    notifications topic and the organizations' webhooks (one active projector does)."""

    webhook_timeout_s: float = Field(default=10.0, gt=0)
    """How long an endpoint has to answer one delivery attempt."""

    webhook_retry_s: float = Field(default=5.0, gt=0)
    """Wait before the first retry; each next one waits 4 times longer, at most
    webhook_max_retry_s."""

    webhook_max_retry_s: float = Field(default=3600.0, gt=0)
    """The longest wait between two attempts."""

    webhook_retry_window_s: float = Field(default=86_400.0, gt=0)
    """How long a delivery is retried (from its notification) before it is failed."""

    metrics_port: int = 9102
    """Port of the Prometheus /metrics endpoint (0: none)."""
