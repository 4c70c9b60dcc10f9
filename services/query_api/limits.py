"""Abuse limits in front of every route: request size, and a rate per token.

- A query string longer than `max_query_bytes` is refused with 414, a body
  larger than `max_body_bytes` (the API reads none) with 413, before routing.
- Each bearer token (keyed by a hash of it, never the token itself) may make
  `rate_limit` requests; callers without a token are keyed by their address.
  Past the limit: 429 with `Retry-After`. /healthz and /readyz are exempt
  (probes). The counts live in `rate_limit_storage`: process memory by
  default, so each API process counts on its own; point every process at one
  shared store (`async+redis://host:6379`, `async+memcached://host:11211`; see
  the `limits` library's storage URIs) to count across processes.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Receive, Scope, Send

from services.query_api.errors import problem
from services.query_api.settings import ApiSettings

EXEMPT = frozenset({"/healthz", "/readyz"})


class AbuseLimits:
    """Pure ASGI middleware: size limits, then the rate limit, then the app."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self.items: list[RateLimitItem] = parse_many(settings.rate_limit)
        storage = storage_from_string(settings.rate_limit_storage)
        if not isinstance(storage, AsyncStorage):
            raise ValueError(
                f"METERING_API_RATE_LIMIT_STORAGE={settings.rate_limit_storage!r} is not an"
                " asynchronous store: use async+memory:// or async+redis://…"
            )
        self.limiter = MovingWindowRateLimiter(storage)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._too_large(scope)
        if refusal is None and scope["path"] not in EXEMPT:
            refusal = await self._over_rate(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _too_large(self, scope: Scope) -> ASGIApp | None:
        query = len(scope.get("query_string", b""))
        if query > self.settings.max_query_bytes:
            limit = self.settings.max_query_bytes
            return problem(414, f"the query string has {query} bytes; at most {limit} are read")
        for name, value in scope["headers"]:
            if name == b"content-length":
                size = int(value) if value.isdigit() else math.inf
                if size > self.settings.max_body_bytes:
                    limit = self.settings.max_body_bytes
                    return problem(413, f"a request body of at most {limit} bytes is read")
        return None

    async def _over_rate(self, scope: Scope) -> ASGIApp | None:
        key = _caller_key(scope)
        for item in self.items:
            if not await self.limiter.hit(item, key):
                stats = await self.limiter.get_window_stats(item, key)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                return problem(
                    429,
                    f"more than {item} for this token; try again in {wait} s",
                    {"Retry-After": str(wait)},
                )
        return None


def _caller_key(scope: Scope) -> str:
    """A hash of the bearer token, else the client's address."""
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return "token:" + hashlib.sha256(value[7:].strip()).hexdigest()[:32]
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"
