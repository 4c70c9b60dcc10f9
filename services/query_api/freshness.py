"""How current an answer is, and whether the client's copy still is: `as_of` and ETags.

- `as_of` (body, and the `X-Data-As-Of` header): the time up to which stored events
  are in the read models, the oldest `caught_up_at` of the projection's shards (each
  shard records when it last found nothing waiting). A low figure with a recent
  `as_of` is low; one with an old `as_of` may be late. Null until every shard has
  caught up once. Events held in quarantine are not in the figures, whatever `as_of`.
- `ETag` (weak): an organization's read models change only in a transaction that
  gives it a new version (organization_versions: a live batch with its events, a
  replay from quarantine, a rebuild's swap), so its version, the URL and the response
  shapes (the OpenAPI document) name an answer; other organizations' events leave it.
  An answer that depends on the clock (the current period, today in the
  organization's zone) holds until the period ends or the local day does: its ETag
  carries that instant, and is not matched after it. A request with
  a matching `If-None-Match` costs one query (two index probes) and gets a 304.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from starlette.responses import Response

from services.query_api.queries import PROJECTION, Queryable, Reader

STATE = """
SELECT (SELECT CASE WHEN bool_and(caught_up_at IS NOT NULL) THEN min(caught_up_at) END
        FROM projection_checkpoints
        WHERE projection = $1 OR projection LIKE $1 || '/%') AS as_of,
       (SELECT version FROM organization_versions WHERE organization_id = $2) AS version
"""

AS_OF_HEADER = "X-Data-As-Of"
CACHE_CONTROL = "private, no-cache"
"""Only the caller may keep an answer, and must ask (If-None-Match) before reusing it."""


@dataclass
class Freshness:
    """What one request's answer is made of: the projection's state and the clock."""

    as_of: datetime | None
    digest: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    holds_until: datetime | None = None
    """The first instant the answer may differ with the read models unchanged."""
    response: Response | None = None

    def until(self, instant: datetime) -> None:
        """The answer depends on the clock up to `instant`."""
        if self.holds_until is None or instant < self.holds_until:
            self.holds_until = instant
            self.describe(self.response)

    def describe(self, response: Response | None) -> None:
        """Give `response` (and what the answer will learn later) these headers."""
        self.response = response
        if response is not None:
            response.headers.update(self.headers())

    @property
    def etag(self) -> str:
        until = 0 if self.holds_until is None else _micros(self.holds_until)
        return f'W/"{self.digest}.{until}"'

    def matches(self, if_none_match: str | None) -> bool:
        """Whether the client's copy (If-None-Match) is still this answer."""
        if not if_none_match:
            return False
        for tag in if_none_match.split(","):
            digest, _, until = tag.strip().removeprefix("W/").strip('"').partition(".")
            held = until.isdigit() and (int(until) == 0 or _micros(self.now) < int(until))
            if digest == self.digest and held:
                return True
        return False

    def headers(self) -> dict[str, str]:
        headers = {"ETag": self.etag, "Cache-Control": CACHE_CONTROL}
        if self.as_of is not None:
            headers[AS_OF_HEADER] = self.as_of.isoformat()
        return headers


def _micros(instant: datetime) -> int:
    return int((instant - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


async def freshness(database: Queryable, shape: str, organization: str, url: str) -> Freshness:
    """The freshness of an answer about `organization` to `url` now: one query (the
    projection's checkpoints, the organization's version)."""
    row = await database.fetchrow(STATE, PROJECTION, organization)
    assert row is not None  # the query always yields one row
    digest = hashlib.sha256(f"{shape}\n{row['version']}\n{url}".encode()).hexdigest()[:32]
    return Freshness(as_of=row["as_of"], digest=digest)


def next_change(row: asyncpg.Record, now: datetime) -> datetime:
    """When an answer about the current period (Reader.current_period's row) may change
    with the read models unchanged: the period's end, or the next local midnight (the
    days counted, today's default range)."""
    end: datetime = row["period_end"] if row["period_start"] is not None else row["standin_end"]
    zone = ZoneInfo(row["timezone"])
    today = now.astimezone(zone).date()
    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), zone)
    return min(end, midnight.astimezone(UTC))


class NotModified(Exception):
    """The client's copy is the answer: 304, with the headers it would have had."""

    def __init__(self, fresh: Freshness) -> None:
        super().__init__("not modified")
        self.headers = fresh.headers()


class FreshReader(Reader):
    """The Reader of one request about one organization: it notes how long its answers
    about the clock hold."""

    def __init__(self, database: Queryable, fresh: Freshness, organization_id: str) -> None:
        super().__init__(database)
        self.fresh = fresh
        self.organization_id = organization_id
        """The organization in the path, which the caller may read."""

    @property
    def as_of(self) -> datetime | None:
        return self.fresh.as_of

    async def current_period(self, organization: str, now: datetime) -> asyncpg.Record:
        row = await super().current_period(organization, now)
        self.fresh.until(next_change(row, now))
        return row
