"""One error model (RFC 9457): every 4xx and 5xx is `application/problem+json`.

A problem has `type` (always `about:blank`: the status says what kind), `title`
(the status's phrase), `status` and `detail`; a 422 also names the input at fault:
`field` when one is, and `errors` with each field and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.infra.database import POSTGRES_TRANSIENT
from services.query_api.auth import Forbidden, KeysUnavailable, Unauthorized
from services.query_api.examples import PROBLEMS
from services.query_api.freshness import NotModified
from services.query_api.models import Problem

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "No token, or an invalid one.",
    403: "The token is for another organization.",
    404: "The organization has no such thing.",
    414: "The query string is too long.",
    422: "A parameter is invalid: `field` and `errors` say which and why.",
    429: "Too many requests for this token; `Retry-After` says when to try again.",
    503: "The database is unreachable, or no keys to verify tokens with; try again later.",
}
"""Every error an operation may answer, as its OpenAPI document says (404 only where a
path names one thing)."""

EVERY_OPERATION = (401, 403, 414, 422, 429, 503)

DOCUMENTED_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in EVERY_OPERATION
}
"""The responses every operation may give, whatever its parameters (document_problems
gives them their media type and descriptions)."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
"""The response of an operation on one thing (a scenario, a run) that does not exist."""


def problem(
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    **members: Any,
) -> JSONResponse:
    """An RFC 9457 problem document."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **members,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def field_of(location: Sequence[str | int]) -> str:
    """The name a client gave the input at `location` ("query", "limit" -> "limit")."""
    inside = location[1:] if len(location) > 1 else location
    return ".".join(str(part) for part in inside)


async def http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    return problem(error.status_code, detail, dict(error.headers or {}))


async def invalid_request(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [{"field": field_of(e["loc"]), "detail": e["msg"]} for e in error.errors()]
    detail = "; ".join(f"{e['field']}: {e['detail']}" for e in errors)
    one = {"field": errors[0]["field"]} if len(errors) == 1 else {}
    return problem(422, detail, errors=errors, **one)


async def not_modified(_: Request, error: Exception) -> Response:
    assert isinstance(error, NotModified)
    return Response(status_code=304, headers=error.headers)


async def unauthorized(_: Request, error: Exception) -> JSONResponse:
    return problem(401, str(error), {"WWW-Authenticate": "Bearer"})


async def forbidden(_: Request, error: Exception) -> JSONResponse:
    return problem(403, str(error))


async def unavailable(_: Request, error: Exception) -> JSONResponse:
    if isinstance(error, KeysUnavailable):
        return problem(503, str(error), {"Retry-After": "5"})
    log.warning("database unavailable: %r", error)
    return problem(503, "the database is unavailable", {"Retry-After": "5"})


async def internal_error(_: Request, error: Exception) -> JSONResponse:
    """A bug: the client learns nothing of it but that it is ours (logged by the server)."""
    return problem(500, "an unexpected error; it has been logged")


def handle_errors(app: FastAPI) -> None:
    """Every error the app answers, as a problem document."""
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(NotModified, not_modified)
    app.add_exception_handler(Unauthorized, unauthorized)
    app.add_exception_handler(Forbidden, forbidden)
    unreachable_kinds: tuple[type[BaseException], ...] = (KeysUnavailable, *POSTGRES_TRANSIENT)
    for unreachable in unreachable_kinds:
        if issubclass(unreachable, Exception):
            app.add_exception_handler(unreachable, unavailable)
    app.add_exception_handler(Exception, internal_error)


def bad_input(field: str, reason: str) -> RequestValidationError:
    """A 422 like a parameter that failed validation: which query field, and why."""
    return RequestValidationError([{"loc": ("query", field), "type": "value_error", "msg": reason}])


def not_found(detail: str) -> StarletteHTTPException:
    return StarletteHTTPException(404, detail=detail)


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with every error response as a problem document: each
    operation answers the errors of EVERY_OPERATION (and the 404 it declares) as
    `application/problem+json`, never FastAPI's own validation body."""
    reference = {"$ref": "#/components/schemas/Problem"}
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            for status in EVERY_OPERATION:
                responses.setdefault(str(status), {})
            for status, response in responses.items():
                if int(status) >= 400:
                    response["description"] = ERROR_DESCRIPTIONS.get(
                        int(status), HTTPStatus(int(status)).phrase
                    )
                    example = PROBLEMS[int(status)]
                    response["content"] = {PROBLEM: {"schema": reference, "example": example}}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
