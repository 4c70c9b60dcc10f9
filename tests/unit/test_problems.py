"""Errors the running API cannot be made to give on purpose: a bug (500) and a database
that went away (503), each a problem document that leaks nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.query_api.app import create_app
from services.query_api.auth import sign
from services.query_api.freshness import Rounds
from services.query_api.settings import ApiSettings

SECRET = "unit-test-secret-long-enough-for-hs256!"


class FailingPool:
    """Lends itself as the connection; answers the freshness rounds, fails every query
    of the read models."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FailingPool]:
        yield self

    async def fetch(self, query: str, _: str, organizations: list[str]) -> list[tuple[Any, ...]]:
        assert "projection_checkpoints" in query
        return [(organization, None, None) for organization in organizations]

    async def fetchrow(self, query: str, *_: Any) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "retry"),
    [
        (RuntimeError("secret internals"), 500, None),
        (ConnectionRefusedError("connection refused by 10.0.0.7"), 503, "5"),
    ],
)
def test_a_failure_inside_is_a_problem_that_leaks_nothing(
    error: BaseException, status: int, retry: str | None
) -> None:
    app = create_app(settings=ApiSettings(jwt_secret=SECRET))
    app.state.pool = FailingPool(error)
    app.state.turns = asyncio.Semaphore(1)
    app.state.rounds = Rounds(app.state.pool)
    token = sign("org-1", SECRET)
    api = TestClient(app, raise_server_exceptions=False)  # no lifespan: no database
    answer = api.get("/v1/organizations/org-1/usage", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers.get("retry-after") == retry
    body = answer.json()
    assert body["status"] == status
    assert "secret" not in answer.text
    assert "10.0.0.7" not in answer.text


def test_the_document_says_every_error_is_a_problem() -> None:
    schema = create_app(settings=ApiSettings(jwt_secret=SECRET)).openapi()
    errors = [
        (path, status, response)
        for path, methods in schema["paths"].items()
        for operation in methods.values()
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]

    assert {status for _, status, _ in errors} >= {"401", "403", "404", "422", "429", "503"}
    for path, status, response in errors:
        assert list(response["content"]) == ["application/problem+json"], (path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
