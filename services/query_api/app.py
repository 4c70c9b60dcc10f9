"""The REST API over the read models (paths fixed by DESIGN.md), plus health and metrics."""

import base64
import binascii
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from services.infra.database import create_pool
from services.infra.settings import ConnectionSettings
from services.query_api import models as m
from services.query_api.auth import Caller, Forbidden, Unauthorized, verify
from services.query_api.metrics import instrument, metrics_text, refresh_usage_gauges
from services.query_api.queries import Reader
from services.query_api.settings import ApiSettings

T = TypeVar("T")
ZERO = Decimal(0)
OrgPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]
IdPath = Annotated[str, Path(min_length=1, max_length=128)]
PeriodQuery = Annotated[
    str,
    Query(pattern=r"^(current|[0-9]{4}-[0-9]{2}-[0-9]{2})$",
          description="`current`, or the start date (YYYY-MM-DD, UTC) of a billing period."),
]  # fmt: skip
CursorQuery = Annotated[str | None, Query(max_length=512, description="From `next_cursor`.")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": m.Problem, "description": "No token, or an invalid one."},
    403: {"model": m.Problem, "description": "The token is for another organization."},
}


def _reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


def _caller(
    request: Request,
    organization_id: OrgPath,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The organization in the path, once the bearer token may read it (else 401/403)."""
    who: Caller = verify(authorization, request.app.state.settings)
    if not who.may_read(organization_id):
        raise Forbidden("this token may not read that organization")
    return organization_id


Org = Annotated[str, Depends(_caller)]
Db = Annotated[Reader, Depends(_reader)]


def create_app(
    connection: ConnectionSettings | None = None, settings: ApiSettings | None = None
) -> FastAPI:
    connection = connection or ConnectionSettings()
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(connection.database_url, size=10)
        app.state.reader = Reader(pool)
        yield
        await pool.close()

    app = FastAPI(
        title="Credit metering API",
        version="1",
        description="How many credits an organization used, where and when.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.settings = settings
    instrument(app)

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, error: Unauthorized) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, error: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=403)

    async def period_start(db: Reader, org: str, period: str) -> datetime:
        if period == "current":
            row = await db.current_period(org, datetime.now(UTC))
            return row["period_start"] or _month_start(datetime.now(UTC))
        try:
            day = date.fromisoformat(period)
        except ValueError:
            raise bad_input("period", f"{period} is not a date") from None
        found = await db.period_starting(org, day)
        if found is None:
            raise bad_input("period", f"no billing period starts on {period}")
        start: datetime = found["period_start"]
        return start

    @app.get("/v1/organizations/{organization_id}/usage", response_model=m.Usage, tags=["usage"])
    async def usage(org: Org, db: Db) -> m.Usage:
        """The current billing period: used, total, remaining, daily average, reset date."""
        now = datetime.now(UTC)
        row = await db.current_period(org, now)
        start = row["period_start"] or _month_start(now)
        end = row["period_end"] or _month_start(start + timedelta(days=32))
        plan_credits = row["plan_credits"] or ZERO
        extra = row["extra_credits"] or ZERO
        used = row["credits_used"] or ZERO
        total = plan_credits + extra
        days = max(1, (min(now, end) - start).days + 1)
        return m.Usage(
            organization_id=org,
            period_start=start,
            reset_at=end,
            plan=row["plan"] or row["organization_plan"],
            plan_credits=plan_credits,
            extra_credits=extra,
            total_credits=total,
            credits_used=used,
            credits_remaining=total - used,
            percent_used=(used * 100 / total).quantize(Decimal("0.01")) if total else ZERO,
            average_daily_usage=(used / days).quantize(Decimal("0.000001")),
            auto_purchase=m.AutoPurchase(
                enabled=row["ap_enabled"],
                threshold_credits=row["auto_purchase_threshold"],
                pack_credits=row["auto_purchase_pack"],
            ),
        )

    @app.get("/v1/organizations/{organization_id}/usage/daily", response_model=m.DailyUsageList,
             tags=["usage"])  # fmt: skip
    async def daily(
        org: Org,
        db: Db,
        from_: Annotated[date | None, Query(alias="from")] = None,
        to: Annotated[date | None, Query()] = None,
    ) -> m.DailyUsageList:
        """The daily usage trend; by default the current billing period's days."""
        if from_ is None or to is None:
            row = await db.current_period(org, datetime.now(UTC))
            start = row["period_start"] or _month_start(datetime.now(UTC))
            from_ = from_ or start.date()
            to = to or datetime.now(UTC).date()
        if to < from_:
            raise bad_input("to", "`to` is before `from`")
        if (to - from_).days > 366:
            raise bad_input("to", "at most 366 days at once")
        rows = await db.daily(org, from_, to)
        return m.DailyUsageList(organization_id=org, days=[m.DailyUsage(**dict(r)) for r in rows])

    @app.get("/v1/organizations/{organization_id}/billing-periods",
             response_model=m.BillingPeriodList, tags=["usage"])  # fmt: skip
    async def billing_periods(
        org: Org, db: Db, limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = 24
    ) -> m.BillingPeriodList:
        """Past and current billing periods with their totals, newest first."""
        rows = await db.billing_periods(org, limit)
        periods = [
            m.BillingPeriod(
                **dict(r),
                credits_remaining=r["plan_credits"] + r["extra_credits"] - r["credits_used"],
            )
            for r in rows
        ]
        return m.BillingPeriodList(organization_id=org, periods=periods)

    @app.get("/v1/organizations/{organization_id}/scenarios",
             response_model=m.Page[m.ScenarioUsage], tags=["scenarios"])  # fmt: skip
    async def scenarios(
        org: Org,
        db: Db,
        period: PeriodQuery = "current",
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> m.Page[m.ScenarioUsage]:
        """Credits per scenario in a billing period, largest first."""
        key = _decode_cursor(cursor, lambda v: Decimal(str(v)))
        start = await period_start(db, org, period)
        rows = await db.scenarios(org, start, key, limit + 1)
        items = [m.ScenarioUsage(**dict(r)) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return m.Page(items=items, next_cursor=_encode_cursor(
            [str(last["credits_used"]), last["scenario_id"]]) if last else None)  # fmt: skip

    @app.get("/v1/organizations/{organization_id}/scenarios/{scenario_id}",
             response_model=m.ScenarioDetail, tags=["scenarios"],
             responses={404: {"model": m.Problem}})  # fmt: skip
    async def scenario(org: Org, db: Db, scenario_id: IdPath) -> m.ScenarioDetail:
        """One scenario: credits this period and all time, runs, last run."""
        start = await period_start(db, org, "current")
        row = await db.scenario(org, scenario_id, start)
        if row is None:
            raise HTTPException(404, detail=f"no scenario {scenario_id!r} in this organization")
        return m.ScenarioDetail(
            scenario_id=scenario_id,
            period_start=start,
            credits_this_period=row["credits_this_period"],
            credits_all_time=row["credits_used"],
            runs=row["runs"],
            last_run_at=row["last_run_at"],
        )

    @app.get("/v1/organizations/{organization_id}/scenarios/{scenario_id}/runs",
             response_model=m.Page[m.RunSummary], tags=["runs"])  # fmt: skip
    async def runs(
        org: Org,
        db: Db,
        scenario_id: IdPath,
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> m.Page[m.RunSummary]:
        """The scenario's run history, newest first, with credits per run."""
        key = _decode_cursor(cursor, lambda v: datetime.fromisoformat(str(v)))
        rows = await db.runs(org, scenario_id, key, limit + 1)
        items = [m.RunSummary(**{k: v for k, v in dict(r).items() if k != "sort_time"})
                 for r in rows[:limit]]  # fmt: skip
        last = rows[limit - 1] if len(rows) > limit else None
        return m.Page(items=items, next_cursor=_encode_cursor(
            [last["sort_time"].isoformat(), last["run_id"]]) if last else None)  # fmt: skip

    @app.get("/v1/organizations/{organization_id}/scenarios/{scenario_id}/modules",
             response_model=m.ScenarioModules, tags=["scenarios"])  # fmt: skip
    async def scenario_modules(
        org: Org, db: Db, scenario_id: IdPath, period: PeriodQuery = "current"
    ) -> m.ScenarioModules:
        """Credits per module across the period's runs of one scenario."""
        start = await period_start(db, org, period)
        rows = await db.scenario_modules(org, start, scenario_id)
        return m.ScenarioModules(scenario_id=scenario_id, period_start=start,
                                 modules=[m.ModuleUsage(**dict(r)) for r in rows])  # fmt: skip

    @app.get("/v1/organizations/{organization_id}/runs/{run_id}", response_model=m.RunDetail,
             tags=["runs"], responses={404: {"model": m.Problem}})  # fmt: skip
    async def run(org: Org, db: Db, run_id: IdPath) -> m.RunDetail:
        """One run: status, times, credits, and credits per module."""
        row = await db.run(org, run_id)
        if row is None:
            raise HTTPException(404, detail=f"no run {run_id!r} in this organization")
        modules = [m.ModuleUsage(**dict(r)) for r in await db.run_modules(org, run_id)]
        return m.RunDetail(**dict(row), modules=modules)

    @app.get("/v1/organizations/{organization_id}/runs/{run_id}/log", response_model=m.RunLog,
             response_model_exclude_none=True, tags=["runs"],
             responses={404: {"model": m.Problem}})  # fmt: skip
    async def run_log(
        org: Org, db: Db, run_id: IdPath, detail: Literal["simple", "advanced"] = "simple"
    ) -> m.RunLog:
        """The run's module executions in order; `advanced` adds operations, times and ids."""
        rows = await db.run_log(org, run_id)
        if not rows and await db.run(org, run_id) is None:
            raise HTTPException(404, detail=f"no run {run_id!r} in this organization")
        simple = ("module_id", "app", "action", "status", "credits", "started_at")
        entries = [
            m.LogEntry(**(dict(r) if detail == "advanced" else {k: r[k] for k in simple}))
            for r in rows
        ]
        return m.RunLog(run_id=run_id, detail=detail, entries=entries)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(db: Db) -> JSONResponse:
        try:
            stalled = await db.projector_stalled_s()
        except (OSError, asyncpg.PostgresError) as error:
            return JSONResponse({"status": "database unreachable", "detail": str(error)}, 503)
        if stalled is not None and stalled > settings.projector_stall_s:
            return JSONResponse({"status": "projector stalled", "stalled_s": stalled}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(db: Db) -> PlainTextResponse:
        await refresh_usage_gauges(db, settings)
        return PlainTextResponse(metrics_text(), media_type="text/plain; version=0.0.4")

    return app


def _month_start(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, parse: Callable[[Any], T]) -> tuple[T, str] | None:
    """The (sort value, id) a cursor carries, or 422 for anything this API did not give out."""
    if cursor is None:
        return None
    try:
        value, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return parse(value), str(key)
    except (ValueError, TypeError, ArithmeticError, binascii.Error, UnicodeDecodeError):
        raise bad_input("cursor", "not a cursor this API gave out") from None


def bad_input(field: str, reason: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors: which query field, and why."""
    return HTTPException(
        422, detail=[{"loc": ["query", field], "type": "value_error", "msg": reason}]
    )
