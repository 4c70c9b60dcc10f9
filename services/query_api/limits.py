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

In memory the limit is a GCRA (one instant per key and limit, O(1) a request):
N per period admits a burst of N, then one each period/N. The `limits` library's
memory store walked every key, and moved each moving window to a thread, on each
request: 10-13 % of a request's time in the profile.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Protocol

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
        self.limiter: Limiter = (
            InMemoryLimiter(self.items)
            if settings.rate_limit_storage == IN_MEMORY
            else SharedLimiter(self.items, settings.rate_limit_storage)
        )

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
        refused = await self.limiter.hit(_caller_key(scope))
        if refused is None:
            return None
        item, wait_s = refused
        wait = max(1, math.ceil(wait_s))
        return problem(
            429,
            f"more than {item} for this token; try again in {wait} s",
            {"Retry-After": str(wait)},
        )


IN_MEMORY = "async+memory://"


class Limiter(Protocol):
    async def hit(self, key: str) -> tuple[RateLimitItem, float] | None:
        """Count a request of `key`; if over a limit, that limit and the seconds to wait."""


class InMemoryLimiter:
    """Every limit as a GCRA in this process: per key, the instant each limit is free."""

    PRUNE_EVERY_S = 10.0

    def __init__(
        self, items: list[RateLimitItem], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.items = [(item, item.get_expiry(), item.get_expiry() / item.amount) for item in items]
        self.clock = clock
        self.free_at: dict[str, list[float]] = {}
        self.pruned_at = clock()

    async def hit(self, key: str) -> tuple[RateLimitItem, float] | None:
        now = self.clock()
        if now - self.pruned_at > self.PRUNE_EVERY_S:
            self._prune(now)
        free_at = self.free_at.get(key) or [now] * len(self.items)
        for (item, period, interval), at in zip(self.items, free_at, strict=True):
            ahead = max(at, now) - now  # how far this key's use runs ahead of the clock
            if ahead > period - interval:
                return item, ahead - (period - interval)
        limits = zip(self.items, free_at, strict=True)
        self.free_at[key] = [max(at, now) + interval for (_, _, interval), at in limits]
        return None

    def _prune(self, now: float) -> None:
        """Forget the keys whose every limit is free again (as if never seen)."""
        self.free_at = {k: v for k, v in self.free_at.items() if max(v) > now}
        self.pruned_at = now


class SharedLimiter:
    """The limits in a store every API process shares (the `limits` library's moving
    window): `async+redis://…`, `async+memcached://…`."""

    def __init__(self, items: list[RateLimitItem], uri: str) -> None:
        storage = storage_from_string(uri)
        if not isinstance(storage, AsyncStorage):
            raise ValueError(
                f"METERING_API_RATE_LIMIT_STORAGE={uri!r} is not an"
                " asynchronous store: use async+memory:// or async+redis://…"
            )
        self.items = items
        self.limiter = MovingWindowRateLimiter(storage)

    async def hit(self, key: str) -> tuple[RateLimitItem, float] | None:
        for item in self.items:
            if not await self.limiter.hit(item, key):
                stats = await self.limiter.get_window_stats(item, key)
                return item, stats.reset_time - time.time()
        return None


def _caller_key(scope: Scope) -> str:
    """A hash of the bearer token, else the client's address."""
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return "token:" + hashlib.sha256(value[7:].strip()).hexdigest()[:32]
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"
