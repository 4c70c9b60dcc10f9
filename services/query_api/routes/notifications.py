"""An organization's notifications, its webhooks and the log of their deliveries.
Never kept by the answer cache: deliveries move without the read models moving."""

import json
from datetime import UTC, datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Query

from services.query_api import cursors
from services.query_api import notifications as notices
from services.query_api.deps import CursorQuery, ReadModels
from services.query_api.notifications import (
    Attempt,
    Delivery,
    DeliveryList,
    Notification,
    NotificationList,
    Webhook,
    WebhookList,
)
from services.query_api.settings import ApiSettings


def router(settings: ApiSettings) -> APIRouter:
    """GET /notifications, /webhooks and /webhooks/deliveries."""
    router = APIRouter(prefix="/v1/organizations/{organization_id}", tags=["notifications"])
    _add_notifications(router, settings)
    _add_webhooks(router, settings)
    return router


def _add_notifications(router: APIRouter, settings: ApiSettings) -> None:
    @router.get("/notifications", response_model=NotificationList)
    async def notifications(
        read_models: ReadModels,
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> NotificationList:
        """The notifications decided for the organization, newest first: credits
        thresholds crossed (75, 90, 100 % of the period's credits), scenario budgets
        crossed (90, 100 %) and the auto-purchase cap reached. Each is also on the
        notifications topic and sent to the organization's webhooks."""
        organization_id = read_models.organization_id
        read_models.fresh.until(datetime.now(UTC))
        before = cursors.decode(cursor, cursors.instant)
        rows = await notices.notifications(read_models.pool, organization_id, before, limit + 1)
        return NotificationList(
            as_of=read_models.as_of,
            organization_id=organization_id,
            notifications=[
                Notification(
                    id=r["event_id"],
                    type=r["type"],
                    decided_at=r["decided_at"],
                    sent_at=r["sent_at"],
                    data=json.loads(r["data"]),
                )
                for r in rows[:limit]
            ],
            next_cursor=cursors.next_cursor(
                rows, limit, lambda last: [last["decided_at"].isoformat(), last["event_id"]]
            ),
        )


def _add_webhooks(router: APIRouter, settings: ApiSettings) -> None:
    @router.get("/webhooks", response_model=WebhookList)
    async def webhooks(read_models: ReadModels) -> WebhookList:
        """The webhooks that receive the organization's notifications (their secrets
        are shown once, by `metering webhooks add`)."""
        read_models.fresh.until(datetime.now(UTC))
        rows = await notices.webhooks(read_models.pool, read_models.organization_id)
        return WebhookList(
            organization_id=read_models.organization_id,
            webhooks=[Webhook(**dict(r)) for r in rows],
        )

    @router.get("/webhooks/deliveries", response_model=DeliveryList)
    async def deliveries(
        read_models: ReadModels,
        status: Annotated[
            Literal["pending", "delivered", "failed"] | None, Query(description="Only these.")
        ] = None,
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.default_page_size,
    ) -> DeliveryList:
        """Each notification's delivery to each webhook, newest first, with every attempt:
        the status code the endpoint answered, or why there was no answer. A delivery is
        retried with backoff (5 s, then 4 times longer each time, at most 1 h) for 24 h."""
        organization_id = read_models.organization_id
        read_models.fresh.until(datetime.now(UTC))
        after = cursors.decode(cursor, cursors.instant)
        before = None if after is None else (after[0], *_delivery_key(after[1]))
        rows = await notices.deliveries(
            read_models.pool, organization_id, status, before, limit + 1
        )
        return DeliveryList(
            organization_id=organization_id,
            deliveries=[delivery(r) for r in rows[:limit]],
            next_cursor=cursors.next_cursor(
                rows,
                limit,
                lambda last: [
                    last["created_at"].isoformat(),
                    json.dumps([last["event_id"], last["endpoint_id"]]),
                ],
            ),
        )


def _delivery_key(text: str) -> tuple[str, str]:
    """The (event id, endpoint id) a deliveries cursor carries, or 422."""
    try:
        event_id, endpoint_id = json.loads(text)
    except (ValueError, TypeError):
        raise cursors.foreign() from None
    return str(event_id), str(endpoint_id)


def delivery(row: asyncpg.Record) -> Delivery:
    r = dict(row)
    return Delivery(
        **{k: v for k, v in r.items() if k != "log"},
        log=[Attempt(**attempt) for attempt in json.loads(r["log"])],
    )
