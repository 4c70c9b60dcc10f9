"""The endpoints' dependencies as named `Annotated` aliases: what a request may read, and with what.

An endpoint that takes `ReadModels` answers only a caller whose bearer token may
read the organization in its path (else 401 or 403, before anything is queried).
One dependency does both (and the freshness probe): each level of FastAPI's
dependency solving cost ~8 % of a request in the profile.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Path, Query, Request, Response

from services.query_api.auth import Forbidden, TokenVerifier
from services.query_api.freshness import FRESH, FreshReader, NotModified, Rounds, freshness
from services.query_api.queries import Reader

OrgPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
IdPath = Annotated[str, Path(min_length=1, max_length=128)]
PeriodQuery = Annotated[
    str,
    Query(
        pattern=r"^(current|[0-9]{4}-[0-9]{2}-[0-9]{2})$",
        description="`current`, or the start date (YYYY-MM-DD, UTC) of a billing period.",
    ),
]
PeriodFilter = Annotated[
    str | None,
    Query(
        pattern=r"^(current|[0-9]{4}-[0-9]{2}-[0-9]{2})$",
        description="`current`, or the start date (YYYY-MM-DD, UTC) of a billing period.",
    ),
]
CursorQuery = Annotated[str | None, Query(max_length=512, description="From `next_cursor`.")]


async def reader(request: Request) -> Reader:
    """The queries over the read models, on the pool the app opened at startup."""
    reader: Reader = request.app.state.reader
    return reader


async def read_models(
    request: Request,
    response: Response,
    organization_id: OrgPath,
    authorization: Annotated[str | None, Header()] = None,
) -> AsyncIterator[FreshReader]:
    """The queries of one request once its bearer token may read the organization in
    the path (else 401/403), with the answer's freshness (from the answer cache's
    middleware, or read now): a 304 here when the client's copy (If-None-Match) is
    current. They share one connection, taken from the pool once: each pool query took
    and gave one back, 0.1 ms of CPU each. Requests wait for a connection in the order
    they came (`turns`, a FIFO semaphore one smaller than the pool, whose last
    connection is the freshness rounds'): asyncpg's pool lets a newcomer take a
    connection before those already waiting, which at 32 connections gave a p99 of
    1.4 s beside a median of 20 ms."""
    verifier: TokenVerifier = request.app.state.verifier
    if not verifier.verify(authorization).may_read(organization_id):
        raise Forbidden("this token may not read that organization")
    scope = request.scope
    fresh = scope.get(FRESH)
    if fresh is None:
        rounds: Rounds = request.app.state.rounds
        url = scope["path"] + "?" + scope["query_string"].decode("latin-1")
        fresh = freshness(await rounds.state(organization_id), request.app.state.shape, url)
        if fresh.matches(request.headers.get("if-none-match")):
            raise NotModified(fresh)
    fresh.describe(response)
    pool: asyncpg.Pool = request.app.state.pool
    turns: asyncio.Semaphore = request.app.state.turns
    async with turns, pool.acquire() as connection:
        yield FreshReader(connection, fresh, organization_id)


async def operator_store(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> AsyncIterator[Reader]:
    """The read models and the store, for a caller with the operator scope (else
    401/403), on one connection taken in turn with the organizations' requests
    (`turns`): a long check (reconciliation's totals) waits for and holds a turn, and
    never takes a connection from under those counted on it."""
    verifier: TokenVerifier = request.app.state.verifier
    if not verifier.verify(authorization).operator:
        raise Forbidden("only the operator scope reads across organizations")
    pool: asyncpg.Pool = request.app.state.pool
    turns: asyncio.Semaphore = request.app.state.turns
    async with turns, pool.acquire() as connection:
        yield Reader(connection)


ReadModels = Annotated[FreshReader, Depends(read_models)]
"""The read models, for an endpoint of an organization: answers carry `as_of` and an ETag."""
Store = Annotated[Reader, Depends(reader)]
"""The read models, for health checks (no organization, no ETag, no token)."""
OperatorStore = Annotated[Reader, Depends(operator_store)]
"""The read models and the store, for an operator's token only (no ETag)."""
