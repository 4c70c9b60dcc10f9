"""Settings of the query API (env prefix `METERING_API_`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Knobs of the query API; the database comes from ConnectionSettings."""

    model_config = SettingsConfigDict(env_prefix="METERING_API_", extra="ignore")

    jwt_secret: str | None = None
    """Shared secret for HS256 tokens (development: `metering token` signs with it)."""

    jwt_public_key: str | None = None
    """PEM public key for RS256 tokens; takes precedence over the secret."""

    jwt_audience: str | None = None
    """Required `aud` claim, when set."""

    operator_scope: str = "metering:operator"
    """Scope (in the token's `scope` claim) that may read any organization."""

    max_page_size: int = 100
    """Largest `limit` a list endpoint accepts."""

    default_page_size: int = 20

    usage_gauge_min_ratio: float = 0.5
    """Organizations below this used ratio get no usage gauges (bounds cardinality)."""

    usage_gauge_max_series: int = 1000
    """At most this many organizations get usage gauges, the most used first."""

    projector_stall_s: float = 120.0
    """/readyz fails when the projector has made no progress for this long."""
