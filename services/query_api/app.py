"""The REST API over the read models (paths fixed by DESIGN.md), plus health; metrics apart."""

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.infra.database import create_pool
from services.infra.settings import ConnectionSettings
from services.query_api.answers import Answers
from services.query_api.auth import TokenVerifier
from services.query_api.errors import DOCUMENTED_ERRORS, document_problems, handle_errors
from services.query_api.examples import RESPONSES
from services.query_api.freshness import Rounds
from services.query_api.limits import AbuseLimits
from services.query_api.metrics import RECONCILIATION, USAGE, instrument, serve_metrics
from services.query_api.queries import Reader
from services.query_api.routes import (
    apps,
    forecast,
    notifications,
    operations,
    purchases,
    reconciliation,
    runs,
    scenarios,
    usage,
)
from services.query_api.settings import ApiSettings

log = logging.getLogger("services.query_api")
RESOURCES = (
    usage,
    forecast,
    apps,
    purchases,
    scenarios,
    runs,
    notifications,
    reconciliation,
    operations,
)
"""The API's routers, one per resource, in the order the OpenAPI document lists them."""
POOL_SIZE = 10
"""Connections of each API process (worker) to PostgreSQL: one for the freshness rounds,
the others for the endpoints' queries (`turns`)."""


def create_app(
    connection: ConnectionSettings | None = None, settings: ApiSettings | None = None
) -> FastAPI:
    """The API app; it opens its database pool at startup and closes it at shutdown."""
    connection = connection or ConnectionSettings()
    settings = settings or ApiSettings()
    app = FastAPI(
        title="Credit metering API",
        version="1",
        description="How many credits an organization used, where and when.",
        lifespan=reading_from(connection.database_url, settings),
        responses=DOCUMENTED_ERRORS,
        # FastAPI's OpenTelemetry bridge asked on each request whether a provider had
        # been set up (2 % of a request in the profile); the metrics are Prometheus'.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    app.add_middleware(Answers, state=app.state, max_bytes=settings.answer_cache_mb << 20)
    app.add_middleware(AbuseLimits, settings=settings)
    instrument(app)
    handle_errors(app)
    routes: list[APIRoute] = []
    for resource in RESOURCES:
        router = resource.router(settings)
        app.include_router(router)
        routes += [r for r in router.routes if isinstance(r, APIRoute) and r.include_in_schema]
    app.state.operations = routes
    schema = document_examples(routes, document_problems(app.openapi()))
    app.openapi = lambda: schema  # type: ignore[method-assign]
    app.state.shape = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()
    return app


def document_examples(routes: list[APIRoute], schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with an example of each operation's answer
    (services/query_api/examples.py)."""
    for route in routes:
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            content = operation["responses"]["200"]["content"]["application/json"]
            content["example"] = RESPONSES[route.response_model]
    return schema


def reading_from(
    database_url: str, settings: ApiSettings
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that gives the app a Reader on a pool of `database_url` while it runs,
    and serves the metrics on the operations port meanwhile."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.warning("%s", app.state.verifier.describe())
        pool = await create_pool(database_url, size=POOL_SIZE, read_only=True)
        app.state.pool = pool
        app.state.turns = asyncio.Semaphore(POOL_SIZE - 1)
        app.state.rounds = Rounds(pool)
        app.state.reader = Reader(pool)
        USAGE.attach(app.state.reader, settings)
        checks = None
        if settings.metrics_port:  # workers leave the operations port to their parent
            checks = await create_pool(database_url, size=1, read_only=True)
            RECONCILIATION.attach(checks, settings)
        stop_metrics = serve_metrics(settings)
        try:
            yield
        finally:
            stop_metrics()
            USAGE.detach()
            if checks is not None:
                RECONCILIATION.detach()
                await checks.close()
            await pool.close()

    return lifespan
