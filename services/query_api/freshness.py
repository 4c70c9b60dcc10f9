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
  a matching `If-None-Match` gets a 304 without a query of its own.

The state (`as_of`, the organization's version) is read for each request after it
arrives, as if each sent its own query, but the requests of one process that arrive
while a read is under way share the next one (`Rounds`), so a kept answer
(services/query_api/answers.py) needs no pool connection of its own. On its own (cache
off) it changed no throughput measurably (/usage, c32, 2 workers, 10M events).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from starlette.responses import Response

from services.query_api.queries import PROJECTION, Queryable, Reader

STATES = """
SELECT o.organization_id, v.version, s.as_of
FROM unnest($2::text[]) AS o (organization_id)
LEFT JOIN organization_versions v ON v.organization_id = o.organization_id
CROSS JOIN (SELECT CASE WHEN bool_and(caught_up_at IS NOT NULL) THEN min(caught_up_at) END
            FROM projection_checkpoints
            WHERE projection = $1 OR projection LIKE $1 || '/%') AS s (as_of)
"""
State = tuple[datetime | None, int | None]
"""The projection's `as_of` and an organization's version (None: never changed)."""

FRESH = "metering.freshness"
"""The scope key under which the answer cache's middleware hands a request's Freshness
to the endpoint (services/query_api/answers.py)."""
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


def freshness(state: State, shape: str, url: str) -> Freshness:
    """The freshness of an answer to `url` (about the organization whose `state` it is)
    with the response shapes `shape`."""
    as_of, version = state
    digest = hashlib.sha256(f"{shape}\n{version}\n{url}".encode()).hexdigest()[:32]
    return Freshness(as_of=as_of, digest=digest)


class Rounds:
    """Reads organizations' states (STATES) for the requests of one process, each read
    begun after the requests it answers arrived: those that arrive while one is under
    way wait for the next, which answers all of them in one query. A request so gets
    what a query of its own sent on arrival would have given, or newer."""

    def __init__(self, database: Queryable) -> None:
        self.database = database
        self.asked: dict[str, list[asyncio.Future[State]]] = {}
        self.reading: asyncio.Task[None] | None = None

    async def state(self, organization: str) -> State:
        """`organization`'s state, read after this call began."""
        future: asyncio.Future[State] = asyncio.get_running_loop().create_future()
        self.asked.setdefault(organization, []).append(future)
        if self.reading is None:
            self.reading = asyncio.create_task(self._read())
        return await future

    async def _read(self) -> None:
        asked: dict[str, list[asyncio.Future[State]]] = {}
        try:
            while self.asked:
                asked, self.asked = self.asked, {}
                try:
                    rows = await self.database.fetch(STATES, PROJECTION, list(asked))
                except Exception as error:  # each waiting request answers it (503, 500)
                    _settle(asked, error)
                    continue
                for organization, version, as_of in rows:
                    _settle({organization: asked.pop(organization)}, (as_of, version))
                _settle(asked, RuntimeError("the state query left organizations out"))
        finally:  # cancelled (the loop is closing): so are the requests still waiting
            self.reading = None
            _settle(asked | self.asked, None)
            self.asked = {}


def _settle(
    asked: dict[str, list[asyncio.Future[State]]], outcome: State | Exception | None
) -> None:
    """Answer the requests waiting in `asked`: a state, an error, or None to cancel."""
    for futures in asked.values():
        for future in futures:
            if future.done():  # the request went away, or was answered
                continue
            if outcome is None:
                future.cancel()
            elif isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


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
