"""The endpoints' dependencies as named `Annotated` aliases: what a request may read, and with what.

An endpoint that takes `OrganizationId` answers only a caller whose bearer token
may read that organization (else 401 or 403, before anything is queried).
"""

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request, Response

from services.query_api.auth import Forbidden, TokenVerifier
from services.query_api.freshness import FreshReader, NotModified, freshness
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


async def readable_organization(
    request: Request,
    organization_id: OrgPath,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The organization in the path, once the bearer token may read it (else 401/403)."""
    verifier: TokenVerifier = request.app.state.verifier
    caller = verifier.verify(authorization)
    if not caller.may_read(organization_id):
        raise Forbidden("this token may not read that organization")
    return organization_id


OrganizationId = Annotated[str, Depends(readable_organization)]


async def read_models(
    request: Request, response: Response, organization_id: OrganizationId
) -> FreshReader:
    """The queries of one request once its caller may read the organization, with the
    answer's freshness: a 304 here when the client's copy (If-None-Match) is current."""
    shared: Reader = request.app.state.reader
    url = request.url.path + "?" + request.url.query
    fresh = await freshness(shared.pool, request.app.state.shape, organization_id, url)
    if fresh.matches(request.headers.get("if-none-match")):
        raise NotModified(fresh)
    fresh.describe(response)
    return FreshReader(shared.pool, fresh)


ReadModels = Annotated[FreshReader, Depends(read_models)]
"""The read models, for an endpoint of an organization: answers carry `as_of` and an ETag."""
Store = Annotated[Reader, Depends(reader)]
"""The read models, for operators' endpoints (no organization, no ETag)."""
