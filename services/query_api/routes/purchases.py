"""The purchases endpoint: every extra-credit purchase of a billing period."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query

from services.query_api import cursors
from services.query_api.deps import CursorQuery, PeriodQuery, ReadModels
from services.query_api.models import Crossing, Purchase, PurchaseList
from services.query_api.routes.scenarios import period_bounds
from services.query_api.settings import ApiSettings

BEFORE_ALL = (datetime(1, 1, 2, tzinfo=UTC), "", "")


def router(settings: ApiSettings) -> APIRouter:
    """GET /purchases."""
    router = APIRouter(prefix="/v1/organizations/{organization_id}", tags=["usage"])

    @router.get("/purchases", response_model=PurchaseList)
    async def purchases(
        read_models: ReadModels,
        period: PeriodQuery = "current",
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> PurchaseList:
        """Every extra-credit purchase of a billing period, manual and automatic (with the
        crossing that decided it), oldest first, each valid until the period's end."""
        organization_id = read_models.organization_id
        after = cursors.decode(cursor, cursors.instant)
        start, end = await period_bounds(read_models, organization_id, period)
        since = BEFORE_ALL if after is None else (after[0], *_event_key(after[1]))
        rows = await read_models.purchases(organization_id, start, end, since, limit + 1)
        return PurchaseList(
            as_of=read_models.as_of,
            organization_id=organization_id,
            period_start=start,
            period_end=end,
            purchases=[purchase(row, end) for row in rows[:limit]],
            next_cursor=cursors.next_cursor(
                rows,
                limit,
                lambda last: [
                    last["purchased_at"].isoformat(),
                    json.dumps([last["event_source"], last["event_id"]]),
                ],
            ),
        )

    return router


def _event_key(text: str) -> tuple[str, str]:
    """The (source, id) a purchases cursor carries, or 422."""
    try:
        source, event_id = json.loads(text)
    except (ValueError, TypeError):
        raise cursors.foreign() from None
    return str(source), str(event_id)


def purchase(row: asyncpg.Record, valid_until: datetime) -> Purchase:
    crossing: Any = None
    if row["threshold_credits"] is not None:
        crossing = Crossing(
            threshold_credits=row["threshold_credits"],
            remaining_credits=row["remaining_credits"],
        )
    return Purchase(
        purchased_at=row["purchased_at"],
        credits=row["credits"],
        purchase=row["purchase"],
        valid_until=valid_until,
        crossing=crossing,
        event_source=row["event_source"],
        event_id=row["event_id"],
    )
