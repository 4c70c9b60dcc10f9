"""The answer cache: an organization's answers kept by their ETag, served without the
endpoint while the read models behind them have not changed.

An answer about an organization is named by its ETag's digest (the organization's
version, the URL, the response shapes: services/query_api/freshness.py) and holds
until the clock reaches what it depends on (`holds_until`). Other organizations'
events move the projection's `as_of` without changing it: a kept answer is given
with the current `as_of` (body and header), as the endpoint would have. The
middleware reads that state for each request (Rounds: after the request arrived,
shared with the requests beside it), then answers a current copy (304), or a kept
answer, or lets the endpoint answer and keeps what it said.
The token is checked first: an answer is only ever given to a caller that may read
its organization, and anything the middleware does not answer itself (a refused
token, a database that fails) the app answers as it would without it.

Dashboards poll the same few URLs every few seconds; an answer kept costs no query
of the read models, no pool connection and no FastAPI request. The cache is per
process, least recently used first out, at most `answer_cache_mb` (0: none).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from starlette.datastructures import Headers, State
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.query_api.freshness import AS_OF_HEADER, FRESH, Freshness, freshness
from services.query_api.metrics import ANSWERS

ORGANIZATION_PATH = re.compile(r"/v1/organizations/([A-Za-z0-9][A-Za-z0-9._:-]{0,127})/")
"""The paths of answers about one organization (deps.OrgPath's rule)."""
KEPT, NOT_MODIFIED, QUERIED = (ANSWERS.labels(o) for o in ("kept", "not_modified", "queried"))
LARGEST_SHARE = 16
"""An answer larger than 1/16 of the cache is not kept (a long run log's page)."""
AS_OF_FIRST = b'{"as_of":'
"""How every answer's body begins (models.Answer's first field)."""
AS_OF_JSON = TypeAdapter(datetime | None)
"""`as_of` serialized as the answers' models serialize it."""


@dataclass(frozen=True)
class Kept:
    """What the endpoint sent, and what it holds for."""

    as_of: datetime | None
    holds_until: datetime | None
    start: Message
    body: bytes
    route: Any
    """The route that answered (its template labels the request's metrics)."""


class AnswerCache:
    """Answers by ETag digest, least recently used first out, at most `max_bytes` of
    bodies."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.answers: OrderedDict[str, Kept] = OrderedDict()

    def get(self, fresh: Freshness) -> Kept | None:
        """The answer kept under `fresh`'s digest, if it is still the answer now (with
        `fresh.as_of`)."""
        answer = self.answers.get(fresh.digest)
        if answer is None:
            return None
        if answer.holds_until is not None and fresh.now >= answer.holds_until:
            self._drop(fresh.digest)
            return None
        if answer.as_of != fresh.as_of:
            redated = _redated(answer, fresh)
            if redated is None:
                self._drop(fresh.digest)
                return None
            self.put(fresh.digest, redated)
            return redated
        self.answers.move_to_end(fresh.digest)
        return answer

    def put(self, digest: str, answer: Kept) -> None:
        if len(answer.body) * LARGEST_SHARE > self.max_bytes:
            return
        self._drop(digest)
        self.answers[digest] = answer
        self.size += len(answer.body)
        while self.size > self.max_bytes:
            self._drop(next(iter(self.answers)))

    def _drop(self, digest: str) -> None:
        answer = self.answers.pop(digest, None)
        if answer is not None:
            self.size -= len(answer.body)


class Answers:
    """Pure ASGI middleware: GET answers about an organization, from the cache when
    current (module docstring). `state` is the app's (verifier, rounds, shape)."""

    def __init__(self, app: ASGIApp, state: State, max_bytes: int) -> None:
        self.app = app
        self.state = state
        self.cache = AnswerCache(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = ORGANIZATION_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if found is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        fresh = await self._freshness(scope, found[1])
        if fresh is None:  # the app answers: a refused token, a failing database
            await self.app(scope, receive, send)
            return
        if fresh.matches(Headers(scope=scope).get("if-none-match")):
            NOT_MODIFIED.inc()
            await Response(status_code=304, headers=fresh.headers())(scope, receive, send)
            return
        answer = self.cache.get(fresh) if self.cache.max_bytes else None
        if answer is not None:
            KEPT.inc()
            scope["route"] = answer.route
            await send(answer.start)
            await send({"type": "http.response.body", "body": answer.body})
            return
        QUERIED.inc()
        scope[FRESH] = fresh
        await self._answer_and_keep(scope, receive, send, fresh)

    async def _freshness(self, scope: Scope, organization: str) -> Freshness | None:
        try:
            caller = self.state.verifier.verify(Headers(scope=scope).get("authorization"))
            if not caller.may_read(organization):
                return None
            state = await self.state.rounds.state(organization)
        except Exception:  # the app gives the error its answer
            return None
        url = scope["path"] + "?" + scope["query_string"].decode("latin-1")
        return freshness(state, self.state.shape, url)

    async def _answer_and_keep(
        self, scope: Scope, receive: Receive, send: Send, fresh: Freshness
    ) -> None:
        start: Message | None = None
        parts: list[bytes] = []

        async def send_and_keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, send_and_keep)
        if start is None or start["status"] != 200 or not self.cache.max_bytes:
            return
        etag = dict(start["headers"]).get(b"etag")
        if etag != fresh.etag.encode():  # not an answer of the read models, or not this one
            return
        answer = Kept(fresh.as_of, fresh.holds_until, start, b"".join(parts), scope.get("route"))
        self.cache.put(fresh.digest, answer)


def _redated(answer: Kept, fresh: Freshness) -> Kept | None:
    """`answer` as of `fresh.as_of`: the body's first field and the header; None if the
    body does not begin with it."""
    body = answer.body
    end = body.find(b",", len(AS_OF_FIRST))
    if not body.startswith(AS_OF_FIRST) or end < 0:
        return None
    body = AS_OF_FIRST + AS_OF_JSON.dump_json(fresh.as_of) + body[end:]
    headers = [
        (name, value)
        for name, value in answer.start["headers"]
        if name not in (b"content-length", b"x-data-as-of")
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    if fresh.as_of is not None:
        headers.append((AS_OF_HEADER.lower().encode(), fresh.as_of.isoformat().encode()))
    start = {**answer.start, "headers": headers}
    return replace(answer, as_of=fresh.as_of, start=start, body=body)
