"""How errors reach clients: the documented 401 and 403, and 422s that name the field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from services.query_api.auth import Forbidden, Unauthorized
from services.query_api.models import Problem

DOCUMENTED_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an invalid one."},
    403: {"model": Problem, "description": "The token is for another organization."},
}
"""The responses every operation may give, whatever its parameters."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
"""The response of an operation on one thing (a scenario, a run) that does not exist."""


async def unauthorized(_: Request, error: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": str(error)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


async def forbidden(_: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=403)


def handle_auth_errors(app: FastAPI) -> None:
    """Answer Unauthorized with 401 (and a Bearer challenge), Forbidden with 403."""
    app.add_exception_handler(Unauthorized, unauthorized)
    app.add_exception_handler(Forbidden, forbidden)


def bad_input(field: str, reason: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors: which query field, and why."""
    return HTTPException(
        422, detail=[{"loc": ["query", field], "type": "value_error", "msg": reason}]
    )
