"""GET /forecast: when an organization's credits run out, and which scenarios burn them."""

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query

from services.query_api import billing
from services.query_api.deps import ReadModels
from services.query_api.forecast import Window, run_out, window
from services.query_api.models import Forecast, ScenarioBurn
from services.query_api.routes.usage import burn_rate, period_of
from services.query_api.settings import ApiSettings

SCENARIOS = 10
"""Scenarios a forecast names by default, those that burn the most."""
PERCENT = Decimal("0.01")


def router(settings: ApiSettings) -> APIRouter:
    """GET /forecast of an organization."""
    router = APIRouter(prefix="/v1/organizations/{organization_id}", tags=["usage"])

    @router.get("/forecast", response_model=Forecast)
    async def forecast(
        read_models: ReadModels,
        limit: Annotated[
            int, Query(ge=1, le=settings.max_page_size, description="Scenarios to name.")
        ] = SCENARIOS,
    ) -> Forecast:
        """When the current period's credits run out at the recent burn rate, against the
        reset date; the credits needed to reach it; the scenarios that drive the burn and
        how much of it scheduled runs cost whatever their data."""
        organization_id = read_models.organization_id
        now = datetime.now(UTC)
        row = await read_models.current_period(organization_id, now)
        start, end = period_of(row)
        days = window(now, row["timezone"])
        read_models.fresh.until(days.holds_until)
        rate, first_usage = await burn_rate(read_models, organization_id, days)
        burns = await scenario_burns(read_models, organization_id, days, first_usage)
        floor = sum((floor for _, floor in burns.values()), billing.ZERO)
        remaining = billing.remaining(
            row["plan_credits"] or billing.ZERO,
            row["extra_credits"] or billing.ZERO,
            row["credits_used"] or billing.ZERO,
        )
        out = run_out(days.forecast_at, end, remaining, rate)
        ranked = sorted(burns.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
        return Forecast(
            as_of=read_models.as_of,
            organization_id=organization_id,
            forecast_at=days.forecast_at,
            first_day=days.first_day,
            last_day=days.today,
            period_start=start,
            reset_at=end,
            credits_remaining=remaining,
            burn_rate_per_day=rate,
            floor_per_day=min(floor, rate),
            runs_out_at=out.runs_out_at,
            runs_out_before_reset=out.runs_out_before_reset,
            credits_needed_to_reset=out.credits_needed_to_reset,
            scenarios=[
                ScenarioBurn(
                    scenario_id=scenario,
                    burn_rate_per_day=burn,
                    floor_per_day=scenario_floor,
                    percent_of_burn=(burn * 100 / rate).quantize(PERCENT) if rate else billing.ZERO,
                )
                for scenario, (burn, scenario_floor) in ranked
            ],
        )

    return router


async def scenario_burns(
    read_models: ReadModels, organization_id: str, days: Window, first_usage: date | None
) -> dict[str, tuple[Decimal, Decimal]]:
    """Each scenario with credits in the window: its burn rate and, of it, its floor."""
    used: dict[str, dict[date, Decimal]] = defaultdict(dict)
    floors: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for r in await read_models.scenario_burn_days(organization_id, days.first_day, days.today):
        used[r["scenario_id"]][r["day"]] = r["credits_used"]
    for r in await read_models.scheduled_floor(organization_id, days.starts_at, days.zone):
        floors[r["scenario_id"]][r["day"]] = r["credits_used"]
    burns = {}
    for scenario in used.keys() | floors.keys():
        burn = days.rate(used[scenario], first_usage)
        burns[scenario] = (burn, min(burn, days.rate(floors[scenario], first_usage)))
    return {scenario: burn for scenario, burn in burns.items() if burn[0] > 0}
