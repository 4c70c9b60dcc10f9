"""Settings of the query API (env prefix `METERING_API_`)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Knobs of the query API; the database comes from ConnectionSettings."""

    model_config = SettingsConfigDict(
        env_prefix="METERING_API_", extra="ignore", env_ignore_empty=True
    )

    jwt_secret: str | None = None
    """Shared secret for HS256 tokens: local use (`metering token` signs with it)."""

    jwt_jwks_url: str | None = None
    """RS256: the identity provider's JWKS URL (http or https); takes precedence."""

    jwt_public_key: str | None = None
    """RS256: one PEM public key, when there is no JWKS URL; takes precedence over the secret."""

    jwt_audience: str | None = None
    """The `aud` every token must carry; mandatory with RS256, checked with HS256 when set."""

    jwt_issuer: str | None = None
    """The `iss` every token must carry; mandatory with RS256, checked with HS256 when set."""

    jwt_organization_claim: str = "org"
    """The claim that names the organization a token may read."""

    jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    """Clock skew allowed on `exp`, `nbf` and `iat` (at most five minutes)."""

    jwt_jwks_timeout_s: float = Field(default=5.0, gt=0, le=60)
    """Longest wait for the JWKS URL to answer."""

    jwt_jwks_cache_s: float = Field(default=300.0, gt=0)
    """How long fetched keys are used before they are fetched again."""

    jwt_jwks_refresh_cooldown_s: float = Field(default=30.0, ge=0)
    """A token with an unknown `kid` fetches the keys again at most once per this long."""

    operator_scope: str = "metering:operator"
    """Scope (in the token's `scope` claim) that may read any organization."""

    rate_limit: str = "100/second;3000/minute"
    """Requests per bearer token (per address without one), in `limits` notation;
    more get 429 with Retry-After."""

    rate_limit_storage: str = "async+memory://"
    """Where the rate counts live: this process's memory, or a store shared by every API
    process (`async+redis://host:6379`)."""

    max_query_bytes: int = Field(default=2048, ge=256)
    """Longest query string read (414 beyond)."""

    max_body_bytes: int = Field(default=1024, ge=0)
    """Largest request body accepted (413 beyond); the API reads none."""

    max_page_size: int = 100
    """Largest `limit` a list endpoint accepts."""

    default_page_size: int = 20

    max_log_page_size: int = 1000
    """Most entries of a run log in one response (the default page); `next_cursor` goes on."""

    answer_cache_mb: int = Field(default=32, ge=0, le=4096)
    """Answers each worker keeps by ETag, served while the read models behind them are
    unchanged (services/query_api/answers.py), in MiB of bodies; 0 keeps none."""

    workers: int = Field(default=1, ge=1, le=64)
    """API worker processes sharing the port (uvicorn's supervisor starts them). Each has
    its own database pool (10 connections), token cache and, with the default memory
    store, its own rate counts: point `rate_limit_storage` at a shared store to count
    across them."""

    metrics_host: str = "127.0.0.1"
    """Address of the operations port serving /metrics (never the public API port)."""

    metrics_port: int = 9103
    """Port of the Prometheus /metrics endpoint (0: none)."""

    usage_gauge_refresh_s: float = 15.0
    """The usage gauges are read from the database at most once per this many seconds."""

    usage_gauge_timeout_s: float = 10.0
    """A scrape waits this long for a refresh, then serves the previous figures."""

    reconciliation_refresh_s: float = 60.0
    """The reconciliation gauge checks the trailing window's offsets and projection this
    often (services/query_api/reconciliation.py)."""

    reconciliation_window_s: float = 3600.0
    """... over the records received and events stored in this many seconds before."""

    reconciliation_totals_refresh_s: float = 900.0
    """... and the read models' totals this often: a scan of them (12 s at 10M events)."""

    usage_gauge_min_ratio: float = 0.5
    """Organizations below this used ratio get no usage gauges (bounds cardinality)."""

    usage_gauge_max_series: int = 1000
    """At most this many organizations get usage gauges, the most used first."""

    ai_apps: frozenset[str] = frozenset(
        {
            "openai",
            "openai-gpt-3",
            "azure-openai",
            "anthropic-claude",
            "gemini-ai",
            "google-gemini-ai",
            "mistral-ai",
            "perplexity-ai",
            "deepseek-ai",
            "make-ai-agents",
            "make-ai-tools",
            "ai-tools",
        }
    )
    """Apps whose modules are AI modules in /usage/apps (`kind: ai`); the rest are
    `standard`. A JSON list in METERING_API_AI_APPS."""

    projector_stall_s: float = 120.0
    """/readyz fails when the projector has made no progress for this long."""

    @model_validator(mode="after")
    def _rs256_names_its_audience_and_issuer(self) -> Self:
        if (self.jwt_jwks_url or self.jwt_public_key) and not (
            self.jwt_audience and self.jwt_issuer
        ):
            raise ValueError(
                "RS256 tokens (METERING_API_JWT_JWKS_URL or METERING_API_JWT_PUBLIC_KEY) need"
                " METERING_API_JWT_AUDIENCE and METERING_API_JWT_ISSUER: without them a token"
                " minted for any client of the identity provider would be accepted"
            )
        return self
