"""The scenario endpoints: credits per scenario in a period, one scenario, its modules."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from asyncpg import Record
from fastapi import APIRouter, Query

from services.query_api import billing, cursors
from services.query_api.deps import CursorQuery, IdPath, PeriodQuery, ReadModels
from services.query_api.errors import NOT_FOUND, bad_input, not_found
from services.query_api.models import (
    DailyUsage,
    ModuleUsage,
    Page,
    ScenarioDailyUsageList,
    ScenarioDetail,
    ScenarioModules,
    ScenarioUsage,
)
from services.query_api.queries import Reader
from services.query_api.routes.usage import day_range, period_of
from services.query_api.settings import ApiSettings

SCENARIO_DAYS = 30
"""Days a scenario's daily usage covers by default, as the platform's own API answers."""


def router(settings: ApiSettings) -> APIRouter:
    """GET /scenarios, /scenarios/{scenario_id}, its /modules and its /usage/daily."""
    router = APIRouter(prefix="/v1/organizations/{organization_id}", tags=["scenarios"])

    @router.get("/scenarios", response_model=Page[ScenarioUsage])
    async def scenarios(
        read_models: ReadModels,
        period: PeriodQuery = "current",
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> Page[ScenarioUsage]:
        """Credits per scenario in a billing period, largest first."""
        organization_id = read_models.organization_id
        after = cursors.decode(cursor, lambda value: Decimal(str(value)))
        start = await period_start(read_models, organization_id, period)
        rows = await read_models.scenarios(organization_id, start, after, limit + 1)
        return Page(
            as_of=read_models.as_of,
            items=[
                ScenarioUsage(**dict(r), budget_percent_used=budget_used(r, "credits_used"))
                for r in rows[:limit]
            ],
            next_cursor=cursors.next_cursor(
                rows, limit, lambda last: [str(last["credits_used"]), last["scenario_id"]]
            ),
        )

    @router.get("/scenarios/{scenario_id}", response_model=ScenarioDetail, responses=NOT_FOUND)
    async def scenario(read_models: ReadModels, scenario_id: IdPath) -> ScenarioDetail:
        """One scenario: credits this period and all time, runs, last run."""
        organization_id = read_models.organization_id
        start = await period_start(read_models, organization_id, "current")
        row = await read_models.scenario(organization_id, scenario_id, start)
        if row is None:
            raise not_found(f"no scenario {scenario_id!r} in this organization")
        return ScenarioDetail(
            as_of=read_models.as_of,
            scenario_id=scenario_id,
            period_start=start,
            credits_this_period=row["credits_this_period"],
            credits_all_time=row["credits_used"],
            runs=row["runs"],
            last_run_at=row["last_run_at"],
            budget_credits=row["budget_credits"],
            budget_percent_used=budget_used(row, "credits_this_period"),
        )

    _add_scenario_parts(router, settings)
    return router


def budget_used(row: Record, used: str) -> Decimal | None:
    """The credits `row[used]` as a percentage of the scenario's budget; None without one."""
    budget: Decimal | None = row["budget_credits"]
    return None if budget is None else billing.percent_used(row[used], budget)


def _add_scenario_parts(router: APIRouter, settings: ApiSettings) -> None:
    """GET /scenarios/{scenario_id}/modules and /scenarios/{scenario_id}/usage/daily."""

    @router.get(
        "/scenarios/{scenario_id}/modules", response_model=ScenarioModules, responses=NOT_FOUND
    )
    async def scenario_modules(
        read_models: ReadModels,
        scenario_id: IdPath,
        period: PeriodQuery = "current",
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.max_page_size,
    ) -> ScenarioModules:
        """Credits per module across the period's runs of one scenario, largest first."""
        organization_id = read_models.organization_id
        after = cursors.decode(cursor, lambda value: Decimal(str(value)))
        start = await period_start(read_models, organization_id, period)
        rows = await read_models.scenario_modules(
            organization_id, start, scenario_id, after, limit + 1
        )
        if not rows and after is None:
            await known_scenario(read_models, organization_id, scenario_id)
        return ScenarioModules(
            as_of=read_models.as_of,
            scenario_id=scenario_id,
            period_start=start,
            modules=[ModuleUsage(**dict(r)) for r in rows[:limit]],
            next_cursor=cursors.next_cursor(
                rows, limit, lambda last: [str(last["credits_used"]), last["module_id"]]
            ),
        )

    @router.get(
        "/scenarios/{scenario_id}/usage/daily",
        response_model=ScenarioDailyUsageList,
        responses=NOT_FOUND,
    )
    async def scenario_daily(
        read_models: ReadModels,
        scenario_id: IdPath,
        from_: Annotated[date | None, Query(alias="from")] = None,
        to: Annotated[date | None, Query()] = None,
    ) -> ScenarioDailyUsageList:
        """The scenario's credits per day, the chart of its Diagram view: by default the last
        30 days to today, in the organization's time zone."""
        organization_id = read_models.organization_id
        first, last = await day_range(read_models, organization_id, from_, to, SCENARIO_DAYS)
        rows = await read_models.scenario_daily(organization_id, scenario_id, first, last)
        if not rows:
            await known_scenario(read_models, organization_id, scenario_id)
        return ScenarioDailyUsageList(
            as_of=read_models.as_of,
            organization_id=organization_id,
            scenario_id=scenario_id,
            days=[DailyUsage(**dict(r)) for r in rows],
        )


async def known_scenario(read_models: Reader, organization_id: str, scenario_id: str) -> None:
    """404 when the organization has no such scenario (REVIEW D7: an empty list said nothing);
    asked only when a list comes back empty."""
    if not await read_models.scenario_known(organization_id, scenario_id):
        raise not_found(f"no scenario {scenario_id!r} in this organization")


async def period_start(read_models: Reader, organization_id: str, period: str) -> datetime:
    """The start of the billing period `period` names (PeriodQuery), or 422 if it has none."""
    start, _ = await period_bounds(read_models, organization_id, period)
    return start


async def period_bounds(
    read_models: Reader, organization_id: str, period: str
) -> tuple[datetime, datetime]:
    """The start and end of the billing period `period` names (PeriodQuery), or 422 if it
    has none; one query either way."""
    if period == "current":
        return period_of(await read_models.current_period(organization_id, datetime.now(UTC)))
    try:
        day = date.fromisoformat(period)
    except ValueError:
        raise bad_input("period", f"{period} is not a date") from None
    found = await read_models.period_starting(organization_id, day)
    if found is None:
        raise bad_input("period", f"no billing period starts on {period}")
    return found["period_start"], found["period_end"]
