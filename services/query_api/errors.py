"""How errors reach clients: the documented 401 and 403, and 422s that name the field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from services.query_api.auth import Forbidden, KeysUnavailable, Unauthorized
from services.query_api.models import Problem

DOCUMENTED_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an invalid one."},
    403: {"model": Problem, "description": "The token is for another organization."},
}
"""The responses every operation may give, whatever its parameters."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
"""The response of an operation on one thing (a scenario, a run) that does not exist."""


TITLES = {
    401: "Unauthorized",
    403: "Forbidden",
    413: "Request body too large",
    414: "Query string too long",
    429: "Too many requests",
    503: "Service unavailable",
}


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem document."""
    return JSONResponse(
        {"type": "about:blank", "title": TITLES[status], "status": status, "detail": detail},
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


async def unauthorized(_: Request, error: Exception) -> JSONResponse:
    return problem(401, str(error), {"WWW-Authenticate": "Bearer"})


async def forbidden(_: Request, error: Exception) -> JSONResponse:
    return problem(403, str(error))


async def keys_unavailable(_: Request, error: Exception) -> JSONResponse:
    return problem(503, str(error), {"Retry-After": "5"})


def handle_auth_errors(app: FastAPI) -> None:
    """Unauthorized: 401 with a Bearer challenge; Forbidden: 403; no keys to verify with: 503."""
    app.add_exception_handler(Unauthorized, unauthorized)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(KeysUnavailable, keys_unavailable)


def bad_input(field: str, reason: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors: which query field, and why."""
    return HTTPException(
        422, detail=[{"loc": ["query", field], "type": "value_error", "msg": reason}]
    )
