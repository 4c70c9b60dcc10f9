"""Prometheus metrics of the API: requests by route template, and usage gauges for alerting.

They are served on an operations port of their own (`metrics_host`:`metrics_port`,
loopback by default), never on the public API port: the usage gauges name every
organization near its limit (REVIEW C1).

Usage gauges have bounded cardinality: only organizations whose current period
is at least `usage_gauge_min_ratio` used get series, at most
`usage_gauge_max_series` of them, the most used first, each with its five most
used scenarios, and, when the run-out forecast (services/query_api/forecast.py) says
their credits run out before the period resets, the seconds until they do. They are
computed at most once per `usage_gauge_refresh_s`, however often Prometheus (or anyone
else who reaches the port) scrapes.

With several worker processes (`workers`), each worker records its requests in
Prometheus' multiprocess files and the parent process serves the port: the
requests of every worker summed, and the usage gauges read once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.query_api import billing, reconciliation
from services.query_api.forecast import run_out, window
from services.query_api.settings import ApiSettings

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from services.query_api.queries import Queryable, Reader

PER_PROCESS = CollectorRegistry()
"""What each process records: its requests."""
OPERATIONS = CollectorRegistry()
"""What one process reads for all: the usage gauges and their refreshes."""
REGISTRY = CollectorRegistry()
"""Everything a single API process serves on its operations port."""
REGISTRY.register(PER_PROCESS)  # a registry collects as a Collector does
REGISTRY.register(OPERATIONS)
REQUESTS = Counter(
    "api_requests_total", "HTTP requests", ["method", "route", "status"], registry=PER_PROCESS
)
LATENCY = Histogram(
    "api_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=PER_PROCESS,
)
ANSWERS = Counter(
    "api_answers_total",
    "GET answers about an organization by how they were given: kept (from the answer"
    " cache), not_modified (304) or queried (by the endpoint)",
    ["outcome"],
    registry=PER_PROCESS,
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


def serve_metrics(
    settings: ApiSettings, registry: CollectorRegistry = REGISTRY
) -> Callable[[], None]:
    """Serve `registry` on the operations address, in a thread; returns how to stop it."""
    if not settings.metrics_port:
        return lambda: None
    server, thread = start_http_server(
        settings.metrics_port, addr=settings.metrics_host, registry=registry
    )

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop


@dataclass(frozen=True)
class UsageSnapshot:
    organizations: Sequence[Any] = ()
    scenarios: Sequence[Any] = ()
    runs_out: Sequence[tuple[str, datetime]] = ()
    """Organizations forecast to run out before their reset, and when."""


REFRESHES = Counter(
    "api_usage_gauge_refreshes_total",
    "Times the usage gauges were read from the database",
    registry=OPERATIONS,
)
REFRESH_ERRORS = Counter(
    "api_usage_gauge_refresh_errors_total",
    "Usage gauge refreshes that failed (the previous figures are served)",
    registry=OPERATIONS,
)


@dataclass(eq=False)
class UsageGauges(Collector):
    """The usage gauges, read from the database at most once per refresh interval.

    Prometheus collects in the metrics server's thread; the read runs on the
    app's event loop (where its pool lives) and the thread waits for it.
    """

    reader: Reader | None = None
    loop: asyncio.AbstractEventLoop | None = None
    settings: ApiSettings | None = None
    snapshot: UsageSnapshot = field(default_factory=UsageSnapshot)
    refreshed_at: float = -math.inf
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def attach(
        self,
        reader: Reader,
        settings: ApiSettings,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Read through `reader` on `loop` (the running one by default) from now on."""
        self.reader, self.settings = reader, settings
        self.loop = loop or asyncio.get_running_loop()
        self.lock = asyncio.Lock()
        self.refreshed_at = -math.inf

    def detach(self) -> None:
        self.reader = self.loop = None
        self.snapshot = UsageSnapshot()

    async def refresh(self) -> None:
        """Read the figures unless they are younger than the refresh interval."""
        async with self.lock:
            settings = self.settings
            assert self.reader is not None
            assert settings is not None
            if time.monotonic() - self.refreshed_at < settings.usage_gauge_refresh_s:
                return
            rows = await self.reader.usage_gauges(
                settings.usage_gauge_min_ratio, settings.usage_gauge_max_series
            )
            scenarios = await self.reader.scenario_gauges(
                [row["organization_id"] for row in rows],
                [row["period_start"] for row in rows],
                SCENARIOS_PER_ORGANIZATION,
            )
            now = datetime.now(UTC)
            self.snapshot = UsageSnapshot(rows, scenarios, await self._runs_out(rows, now))
            self.refreshed_at = time.monotonic()
            REFRESHES.inc()

    async def _runs_out(self, rows: Sequence[Any], now: datetime) -> list[tuple[str, datetime]]:
        """Of the organizations of `rows` (usage_gauges), those forecast to run out before
        their period resets, and when."""
        assert self.reader is not None
        if not rows:
            return []
        windows = {r["organization_id"]: window(now, r["timezone"]) for r in rows}
        days = await self.reader.burn_days(
            list(windows),
            min(w.first_day for w in windows.values()),
            max(w.today for w in windows.values()),
        )
        credits: dict[str, dict[date, Decimal]] = {org: {} for org in windows}
        first_usage: dict[str, date | None] = {}
        for day in days:
            org = day["organization_id"]
            first_usage[org] = day["first_day"]
            if day["day"] is not None:
                credits[org][day["day"]] = day["credits_used"]
        forecasts = []
        for r in rows:
            org, days_of = r["organization_id"], windows[r["organization_id"]]
            rate = days_of.rate(credits[org], first_usage.get(org))
            remaining = r["total"] - r["credits_used"]
            out = run_out(days_of.forecast_at, r["period_end"], remaining, rate)
            if out.runs_out_before_reset and out.runs_out_at is not None:
                forecasts.append((org, out.runs_out_at))
        return forecasts

    def _refresh_from_thread(self) -> None:
        loop, settings = self.loop, self.settings
        if loop is None or settings is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.refresh(), loop)
        try:
            future.result(timeout=settings.usage_gauge_timeout_s)
        except Exception:  # a timeout or a database error: the last figures stay
            future.cancel()
            REFRESH_ERRORS.inc()
            log.exception("usage gauges: refresh failed; serving the previous figures")

    def describe(self) -> Iterator[Metric]:
        yield from self._families(UsageSnapshot(), datetime.now(UTC))

    def collect(self) -> Iterator[Metric]:
        self._refresh_from_thread()
        yield from self._families(self.snapshot, datetime.now(UTC))

    @staticmethod
    def _families(snapshot: UsageSnapshot, now: datetime) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "credits_used", "Credits used in the current period", labels=["organization"]
        )
        total = GaugeMetricFamily(
            "credits_total",
            "Plan plus extra credits of the current period",
            labels=["organization"],
        )
        ratio = GaugeMetricFamily(
            "credits_used_ratio",
            "Credits used / total in the current period",
            labels=["organization"],
        )
        scenario = GaugeMetricFamily(
            "credits_scenario_used",
            "Credits used this period by the most used scenarios of the organizations with"
            " usage gauges",
            labels=["organization", "scenario"],
        )
        for row in snapshot.organizations:
            org, figure, limit = row["organization_id"], row["credits_used"], row["total"]
            # Prometheus samples are floats; the exact figures are in the REST API.
            used.add_metric([org], float(figure))
            total.add_metric([org], float(limit))
            ratio.add_metric([org], float(billing.used_ratio(figure, limit)))
        for row in snapshot.scenarios:
            scenario.add_metric(
                [row["organization_id"], row["scenario_id"]], float(row["credits_used"])
            )
        runs_out = GaugeMetricFamily(
            "credits_run_out_before_reset_seconds",
            "Seconds until the credits of the current period run out at the recent burn rate"
            " (GET /forecast), for the organizations with usage gauges forecast to run out"
            " before the period resets; 0 once they have",
            labels=["organization"],
        )
        for org, when in snapshot.runs_out:
            runs_out.add_metric([org], max(0.0, (when - now).total_seconds()))
        yield from (used, total, ratio, scenario, runs_out)


USAGE = UsageGauges()
OPERATIONS.register(USAGE)

RECONCILIATIONS = Counter(
    "reconciliation_runs_total", "Reconciliations of the trailing window", registry=OPERATIONS
)
RECONCILIATION_ERRORS = Counter(
    "reconciliation_errors_total",
    "Reconciliations that failed (the previous figures are served)",
    registry=OPERATIONS,
)


@dataclass(eq=False)
class ReconciliationGauges(Collector):
    """What reconciliation (services/query_api/reconciliation.py) finds wrong in the
    trailing `reconciliation_window_s`, checked in the background: offsets received
    without an outcome or never received, and events parked by the projector, every
    `reconciliation_refresh_s`; totals that differ from their parts (all organizations)
    every `reconciliation_totals_refresh_s`."""

    unreconciled: dict[str, float] = field(default_factory=dict)
    task: asyncio.Future[None] | concurrent.futures.Future[None] | None = None
    """Cancelled on detach (a concurrent future's cancel is safe from any thread)."""
    totals_at: float = -math.inf

    def attach(
        self,
        database: Queryable,
        settings: ApiSettings,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Check through `database` on `loop` (the running one by default) from now on."""
        self.unreconciled, self.totals_at = {}, -math.inf
        work = self._run(database, settings)
        if loop is None:
            self.task = asyncio.ensure_future(work)
        else:
            self.task = asyncio.run_coroutine_threadsafe(work, loop)

    def detach(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.task = None
        self.unreconciled = {}

    async def _run(self, database: Queryable, settings: ApiSettings) -> None:
        while True:
            try:
                await self._check(database, settings)
                RECONCILIATIONS.inc()
            except Exception:  # a database away: the last figures stay
                RECONCILIATION_ERRORS.inc()
                log.exception("reconciliation: check failed; serving the previous figures")
            await asyncio.sleep(settings.reconciliation_refresh_s)

    async def _check(self, database: Queryable, settings: ApiSettings) -> None:
        until = datetime.now(UTC)
        since = until - timedelta(seconds=settings.reconciliation_window_s)
        lines = await reconciliation.partitions(database, since, until)
        as_of = await reconciliation.as_of(database)
        stored = await reconciliation.projection(database, since, until, as_of)
        self.unreconciled["offsets"] = sum(line.missing for line in lines)
        self.unreconciled["projection"] = stored.quarantined
        if time.monotonic() - self.totals_at >= settings.reconciliation_totals_refresh_s:
            self.totals_at = time.monotonic()
            self.unreconciled["totals"] = len(await reconciliation.totals(database, None, 1000))

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("reconciliation_unreconciled", "", labels=["check"])

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "reconciliation_unreconciled",
            "What reconciliation finds wrong in the trailing window: offsets received without"
            " an outcome or never received (offsets), events parked by the projector"
            " (projection), totals unequal to their parts (totals, at most 1000)",
            labels=["check"],
        )
        for check, value in list(self.unreconciled.items()):
            gauge.add_metric([check], value)
        yield gauge


RECONCILIATION = ReconciliationGauges()
OPERATIONS.register(RECONCILIATION)
