"""The answer cache's parts: freshness rounds read after each request arrived, and kept
answers that hold no longer than they should."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.query_api.answers import AnswerCache, Kept
from services.query_api.freshness import Freshness, Rounds, freshness

NOW = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)


class Database:
    """Answers STATES with the version it holds when each query starts; a query waits
    for `release` when `hold` is set."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.queries: list[list[str]] = []
        self.hold = False
        self.release = asyncio.Event()
        self.began = asyncio.Event()
        self.error: Exception | None = None

    async def fetch(self, _: str, __: str, organizations: list[str]) -> list[tuple[Any, ...]]:
        self.queries.append(organizations)
        self.began.set()
        if self.error is not None:
            raise self.error
        rows = [(o, self.versions.get(o), NOW) for o in organizations]
        if self.hold:
            await self.release.wait()
        return rows


async def test_a_request_that_arrives_during_a_read_waits_for_the_next_which_serves_all() -> None:
    database = Database()
    database.versions["org-a"] = 1
    database.hold = True
    rounds = Rounds(database)  # type: ignore[arg-type]

    first = asyncio.create_task(rounds.state("org-a"))
    await database.began.wait()  # its read has begun (version 1 read)
    database.versions["org-a"] = 2  # changed after that read began, before these arrive
    later = [asyncio.create_task(rounds.state(o)) for o in ("org-a", "org-a", "org-b")]
    await asyncio.sleep(0)
    database.release.set()

    assert await first == (NOW, 1)
    assert [await t for t in later] == [(NOW, 2), (NOW, 2), (NOW, None)]
    assert database.queries == [["org-a"], ["org-a", "org-b"]], "one read for those who waited"
    assert rounds.reading is None


async def test_a_failed_read_fails_its_requests_only_and_a_gone_request_hurts_no_one() -> None:
    database = Database()
    database.error = ConnectionRefusedError("down")
    rounds = Rounds(database)  # type: ignore[arg-type]
    with pytest.raises(ConnectionRefusedError):
        await rounds.state("org-a")

    database.error = None
    database.hold = True
    database.began.clear()
    gone = asyncio.create_task(rounds.state("org-a"))
    staying = asyncio.create_task(rounds.state("org-a"))
    await database.began.wait()
    gone.cancel()
    database.release.set()

    assert await staying == (NOW, None)
    assert gone.cancelled()


def kept(fresh: Freshness, body: dict[str, Any], holds_until: datetime | None = None) -> Kept:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    return Kept(fresh.as_of, holds_until, start, data, None)


def fresh_at(
    as_of: datetime | None, version: int = 1, url: str = "/u", now: datetime = NOW
) -> Freshness:
    found = freshness((as_of, version), "shape", url)
    found.now = now
    return found


def test_a_kept_answer_takes_the_current_as_of_and_stops_holding_at_its_time() -> None:
    cache = AnswerCache(1 << 20)
    before = fresh_at(NOW - timedelta(seconds=5))
    cache.put(before.digest, kept(before, {"as_of": "2026-12-02T19:59:55Z", "credits": "1.5"}, NOW))

    moved = fresh_at(NOW - timedelta(seconds=1), now=NOW - timedelta(seconds=1))
    answer = cache.get(moved)
    assert answer is not None
    assert json.loads(answer.body) == {"as_of": "2026-12-02T19:59:59Z", "credits": "1.5"}
    headers = dict(answer.start["headers"])
    assert headers[b"content-length"] == str(len(answer.body)).encode()
    assert headers[b"x-data-as-of"] == b"2026-12-02T19:59:59+00:00"
    assert cache.get(fresh_at(None, now=NOW - timedelta(seconds=1))) is not None
    assert json.loads(cache.answers[moved.digest].body)["as_of"] is None

    assert cache.get(fresh_at(None, now=NOW)) is None, "held until NOW, not at it"
    assert not cache.answers
    assert cache.size == 0


def test_another_version_or_url_is_another_answer() -> None:
    cache = AnswerCache(1 << 20)
    one = fresh_at(NOW)
    cache.put(one.digest, kept(one, {"as_of": None}))

    assert cache.get(fresh_at(NOW, version=2)) is None
    assert cache.get(fresh_at(NOW, url="/u?limit=1")) is None
    assert cache.get(fresh_at(NOW)) is not None


def test_the_least_recently_used_go_first_and_large_answers_are_not_kept() -> None:
    cache = AnswerCache(1600)  # answers of at most 100 bytes (1/16)
    states = [fresh_at(NOW, url=f"/u/{n}") for n in range(26)]
    for state in states[:25]:  # 63 bytes each: 25 fit
        cache.put(state.digest, kept(state, {"as_of": None, "pad": "x" * 40}))
    assert len(cache.answers) == 25
    big = fresh_at(NOW, url="/big")
    cache.put(big.digest, kept(big, {"as_of": None, "pad": "x" * 80}))
    assert big.digest not in cache.answers, "larger than 1/16 of the cache"

    cache.get(states[0])
    cache.put(states[25].digest, kept(states[25], {"as_of": None, "pad": "x" * 40}))

    assert cache.size == 25 * 63 <= cache.max_bytes
    assert states[0].digest in cache.answers, "used last: kept"
    assert states[1].digest not in cache.answers, "used least recently: out"
