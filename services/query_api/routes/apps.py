"""Usage by app and module kind: where a period's credits went, AI modules or not."""

from decimal import Decimal

import asyncpg
from fastapi import APIRouter

from services.query_api.deps import PeriodQuery, ReadModels
from services.query_api.models import AppUsage, AppUsageList
from services.query_api.routes.scenarios import period_bounds
from services.query_api.settings import ApiSettings


def router(settings: ApiSettings) -> APIRouter:
    """GET /usage/apps."""
    router = APIRouter(prefix="/v1/organizations/{organization_id}", tags=["usage"])

    @router.get("/usage/apps", response_model=AppUsageList)
    async def apps(read_models: ReadModels, period: PeriodQuery = "current") -> AppUsageList:
        """A billing period's credits per app, each app an AI one or not (`kind`, from the
        operators' list METERING_API_AI_APPS), with the totals per kind. One row per app
        the organization used: the list is as long as the platform's app catalogue at most."""
        organization_id = read_models.organization_id
        start, end = await period_bounds(read_models, organization_id, period)
        rows = await read_models.apps(organization_id, start)
        used = await read_models.period_used(organization_id, start)
        apps = [app_usage(row, settings.ai_apps) for row in rows]
        by_kind = {"ai": Decimal(0), "standard": Decimal(0)}
        for app in apps:
            by_kind[app.kind] += app.credits_used
        return AppUsageList(
            as_of=read_models.as_of,
            organization_id=organization_id,
            period_start=start,
            period_end=end,
            apps=apps,
            by_kind=by_kind,
            not_by_app=used - sum(by_kind.values()),
            credits_used=used,
        )

    return router


def app_usage(row: asyncpg.Record, ai_apps: frozenset[str]) -> AppUsage:
    return AppUsage(
        app=row["app"],
        kind="ai" if row["app"] in ai_apps else "standard",
        credits_used=row["credits_used"],
        operations=row["operations"],
        executions=row["executions"],
    )
