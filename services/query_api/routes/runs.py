"""The run endpoints: a scenario's run history, one run in detail, and its log."""

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Query

from services.query_api import cursors
from services.query_api.deps import CursorQuery, IdPath, OrganizationId, ReadModels
from services.query_api.errors import NOT_FOUND, bad_input, not_found
from services.query_api.models import (
    LogEntry,
    ModuleUsage,
    Page,
    RunDetail,
    RunLog,
    RunSummary,
)
from services.query_api.routes.scenarios import known_scenario
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
        organization_id: OrganizationId,
        read_models: ReadModels,
        scenario_id: IdPath,
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> Page[RunSummary]:
        """The scenario's run history, newest first, with credits per run."""
        after = cursors.decode(cursor, lambda value: datetime.fromisoformat(str(value)))
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
    async def run(
        organization_id: OrganizationId, read_models: ReadModels, run_id: IdPath
    ) -> RunDetail:
        """One run: status, times, credits, and credits per module."""
        row = await read_models.run(organization_id, run_id)
        if row is None:
            raise not_found(f"no run {run_id!r} in this organization")
        rows = await read_models.run_modules(organization_id, run_id)
        modules = [ModuleUsage(**dict(r)) for r in rows]
        return RunDetail(**dict(row), modules=modules, as_of=read_models.as_of)

    _add_log(router, settings)
    return router


def _add_log(router: APIRouter, settings: ApiSettings) -> None:
    """GET /runs/{run_id}/log."""

    @router.get(
        "/runs/{run_id}/log",
        response_model=RunLog,
        response_model_exclude_none=True,
        responses=NOT_FOUND,
    )
    async def run_log(
        organization_id: OrganizationId,
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
        after = cursors.decode(cursor, lambda value: datetime.fromisoformat(str(value)))
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
