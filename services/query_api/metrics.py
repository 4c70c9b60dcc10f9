"""Prometheus metrics of the API: requests by route template, and usage gauges for alerting.

Usage gauges have bounded cardinality: only organizations whose current period
is at least `usage_gauge_min_ratio` used get series, at most
`usage_gauge_max_series` of them, the most used first, each with its five most
used scenarios.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.query_api import billing
from services.query_api.settings import ApiSettings

if TYPE_CHECKING:
    from services.query_api.queries import Reader

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "api_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "api_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
USED = Gauge(
    "credits_used", "Credits used in the current period", ["organization"], registry=REGISTRY
)
TOTAL = Gauge(
    "credits_total",
    "Plan plus extra credits of the current period",
    ["organization"],
    registry=REGISTRY,
)
RATIO = Gauge(
    "credits_used_ratio",
    "Credits used / total in the current period",
    ["organization"],
    registry=REGISTRY,
)

SCENARIO_USED = Gauge(
    "credits_scenario_used",
    "Credits used this period by the most used scenarios of the organizations with usage gauges",
    ["organization", "scenario"],
    registry=REGISTRY,
)
SCENARIOS_PER_ORGANIZATION = 5


class RequestMetrics:
    """Pure ASGI middleware: counts and times each request by its route template.

    The router records the matched route in the scope; its `path` is the template
    (`/v1/organizations/{organization_id}/usage`), never the raw path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = str(getattr(scope.get("route"), "path", "unmatched"))
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], route, str(status)).inc()


def instrument(app: FastAPI) -> None:
    """Count and time every request by its route template, never its raw path."""
    app.add_middleware(RequestMetrics)


async def refresh_usage_gauges(reader: Reader, settings: ApiSettings) -> None:
    """Set the usage gauges to the read models' current figures, dropping stale series."""
    rows = await reader.usage_gauges(
        settings.usage_gauge_min_ratio, settings.usage_gauge_max_series
    )
    scenarios = await reader.scenario_gauges(
        [row["organization_id"] for row in rows],
        [row["period_start"] for row in rows],
        SCENARIOS_PER_ORGANIZATION,
    )
    for gauge in (USED, TOTAL, RATIO, SCENARIO_USED):
        gauge.clear()
    for row in rows:
        org, used, total = row["organization_id"], row["credits_used"], row["total"]
        # Prometheus samples are floats; the exact figures are in the REST API.
        USED.labels(org).set(float(used))
        TOTAL.labels(org).set(float(total))
        RATIO.labels(org).set(float(billing.used_ratio(used, total)))
    for row in scenarios:
        SCENARIO_USED.labels(row["organization_id"], row["scenario_id"]).set(
            float(row["credits_used"])
        )


def metrics_text() -> str:
    return generate_latest(REGISTRY).decode()
