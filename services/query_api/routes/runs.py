"""The run endpoints: a scenario's run history, one run in detail, and its log."""

from datetime import UTC, datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from services.query_api import cursors
from services.query_api.deps import (
    CursorQuery,
    IdPath,
    PeriodFilter,
    ReadModels,
)
from services.query_api.errors import NOT_FOUND, bad_input, not_found
from services.query_api.models import (
    LogEntry,
    ModuleUsage,
    Page,
    RunDetail,
    RunLog,
    RunSummary,
)
from services.query_api.queries import Reader, RunFilters
from services.query_api.routes.scenarios import known_scenario, period_bounds
from services.query_api.settings import ApiSettings

SORT_KEY = "sort_time"
"""The column Reader.runs orders and pages by; not part of a run summary."""

SIMPLE_LOG = ("module_id", "app", "action", "status", "credits", "started_at")
"""The fields of a log entry at `detail=simple`; `advanced` gives them all."""
LOG_FIELDS = (*SIMPLE_LOG, "finished_at", "operations", "event_source", "event_id")


def _position(value: str) -> int:
    if not value.isdigit():
        raise bad_input("cursor", "not a cursor this API gave out")
    return int(value)


def router(settings: ApiSettings) -> APIRouter:
    """GET /scenarios/{scenario_id}/runs, /runs/{run_id} and /runs/{run_id}/log."""
    router = APIRouter(prefix="/v1/organizations/{organization_id}", tags=["runs"])

    @router.get(
        "/scenarios/{scenario_id}/runs", response_model=Page[RunSummary], responses=NOT_FOUND
    )
    async def runs(
        read_models: ReadModels,
        scenario_id: IdPath,
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> Page[RunSummary]:
        """The scenario's run history, newest first, with credits per run."""
        organization_id = read_models.organization_id
        after = cursors.decode(cursor, cursors.instant)
        rows = await read_models.runs(organization_id, scenario_id, after, limit + 1)
        if not rows:
            await known_scenario(read_models, organization_id, scenario_id)
        return Page(
            as_of=read_models.as_of,
            items=[run_summary(r) for r in rows[:limit]],
            next_cursor=cursors.next_cursor(
                rows, limit, lambda last: [last[SORT_KEY].isoformat(), last["run_id"]]
            ),
        )

    @router.get("/runs/{run_id}", response_model=RunDetail, responses=NOT_FOUND)
    async def run(read_models: ReadModels, run_id: IdPath) -> RunDetail:
        """One run: status, times, credits, and credits per module."""
        organization_id = read_models.organization_id
        row = await read_models.run(organization_id, run_id)
        if row is None:
            raise not_found(f"no run {run_id!r} in this organization")
        rows = await read_models.run_modules(organization_id, run_id)
        modules = [ModuleUsage(**dict(r)) for r in rows]
        return RunDetail(**dict(row), modules=modules, as_of=read_models.as_of)

    _add_log(router, settings)
    _add_all_runs(router, settings)
    return router


EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
RunState = Literal["running", "success", "warning", "error", "incomplete"]


def _add_all_runs(router: APIRouter, settings: ApiSettings) -> None:
    """GET /runs: every run of the organization."""

    @router.get("/runs", response_model=Page[RunSummary])
    async def all_runs(
        read_models: ReadModels,
        scenario: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        status: RunState | None = None,
        kind: Literal["scenario", "ai_agent"] | None = None,
        period: PeriodFilter = None,
        from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
        to: AwareDatetime | None = None,
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> Page[RunSummary]:
        """Every run of the organization, scenarios' and AI agents' alike, newest first (the
        platform's Credit usage table): by scenario, status, kind, billing period, and the
        runs that started in [`from`, `to`)."""
        organization_id = read_models.organization_id
        after = cursors.decode(cursor, cursors.instant)
        since, until = await run_window(read_models, organization_id, period, from_, to)
        before = min((until, ""), after) if after else (until, "")
        filters = RunFilters(scenario, status, kind)
        rows = await read_models.all_runs(organization_id, since, before, filters, limit + 1)
        return Page(
            as_of=read_models.as_of,
            items=[run_summary(r) for r in rows[:limit]],
            next_cursor=cursors.next_cursor(
                rows, limit, lambda last: [last[SORT_KEY].isoformat(), last["run_id"]]
            ),
        )


async def run_window(
    read_models: Reader,
    organization_id: str,
    period: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[datetime, datetime]:
    """The times runs are listed in: [since, until) within the period if one is named;
    422 when nothing can be in it."""
    first, last = (EARLIEST, LATEST)
    if period is not None:
        first, last = await period_bounds(read_models, organization_id, period)
    first, last = max(first, since or first), min(last, until or last)
    if since is not None and until is not None and until <= since:
        raise bad_input("to", "`to` is not after `from`")
    return first, last


def _add_log(router: APIRouter, settings: ApiSettings) -> None:
    """GET /runs/{run_id}/log."""

    @router.get(
        "/runs/{run_id}/log",
        response_model=RunLog,
        response_model_exclude_none=True,
        responses=NOT_FOUND,
    )
    async def run_log(
        read_models: ReadModels,
        run_id: IdPath,
        detail: Literal["simple", "advanced"] = "simple",
        cursor: CursorQuery = None,
        limit: Annotated[
            int, Query(ge=1, le=settings.max_log_page_size)
        ] = settings.max_log_page_size,
    ) -> RunLog:
        """The run's module executions in order, a page at a time (`next_cursor`);
        `advanced` adds operations, times and ids."""
        organization_id = read_models.organization_id
        after = cursors.decode(cursor, cursors.instant)
        start = (after[0], _position(after[1])) if after else None
        rows = await read_models.run_log(organization_id, run_id, start, limit + 1)
        if not rows and after is None and await read_models.run(organization_id, run_id) is None:
            raise not_found(f"no run {run_id!r} in this organization")
        return log_page(run_id, detail, rows, limit, read_models.as_of)


def log_page(
    run_id: str,
    detail: Literal["simple", "advanced"],
    rows: list[asyncpg.Record],
    limit: int,
    as_of: datetime | None,
) -> RunLog:
    """A page of a run's log from Reader.run_log's rows (fetched `limit + 1`)."""
    fields = LOG_FIELDS if detail == "advanced" else SIMPLE_LOG
    return RunLog(
        as_of=as_of,
        run_id=run_id,
        detail=detail,
        entries=[LogEntry(**{k: r[k] for k in fields}) for r in rows[:limit]],
        next_cursor=cursors.next_cursor(
            rows, limit, lambda last: [last["started_at"].isoformat(), str(last["event_position"])]
        ),
    )


def run_summary(row: asyncpg.Record) -> RunSummary:
    """One row of Reader.runs, without its sort key."""
    return RunSummary(**{k: v for k, v in dict(row).items() if k != SORT_KEY})
