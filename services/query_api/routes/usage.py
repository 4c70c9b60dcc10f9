"""The usage endpoints: the current billing period, the daily trend, and past periods."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query

from services.query_api import billing, cursors
from services.query_api.deps import CursorQuery, ReadModels
from services.query_api.errors import bad_input
from services.query_api.forecast import Window, run_out, window
from services.query_api.models import (
    AutoPurchase,
    BillingPeriod,
    BillingPeriodList,
    DailyUsage,
    DailyUsageList,
    Usage,
)
from services.query_api.queries import Reader
from services.query_api.settings import ApiSettings

MAX_DAYS = 366
"""The longest daily trend one request may ask for."""


def router(settings: ApiSettings) -> APIRouter:
    """GET /usage, /usage/daily and /billing-periods of an organization."""
    router = APIRouter(prefix="/v1/organizations/{organization_id}", tags=["usage"])

    @router.get("/usage", response_model=Usage)
    async def usage(read_models: ReadModels) -> Usage:
        """The current billing period: used, total, remaining, daily average, reset date."""
        organization_id = read_models.organization_id
        now = datetime.now(UTC)
        row = await read_models.current_period(organization_id, now)
        days = window(now, row["timezone"])
        read_models.fresh.until(days.holds_until)
        rate, _ = await burn_rate(read_models, organization_id, days)
        return current_usage(organization_id, row, now, read_models.as_of, days, rate)

    @router.get("/usage/daily", response_model=DailyUsageList)
    async def daily(
        read_models: ReadModels,
        from_: Annotated[date | None, Query(alias="from")] = None,
        to: Annotated[date | None, Query()] = None,
    ) -> DailyUsageList:
        """The daily usage trend; by default the current billing period's days."""
        organization_id = read_models.organization_id
        from_, to = await day_range(read_models, organization_id, from_, to)
        rows = await read_models.daily(organization_id, from_, to)
        days = [DailyUsage(**dict(r)) for r in rows]
        return DailyUsageList(organization_id=organization_id, days=days, as_of=read_models.as_of)

    @router.get("/billing-periods", response_model=BillingPeriodList)
    async def billing_periods(
        read_models: ReadModels,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = 24,
        cursor: CursorQuery = None,
    ) -> BillingPeriodList:
        """Past and current billing periods with their totals, newest first, in pages."""
        organization_id = read_models.organization_id
        after = cursors.decode(cursor, cursors.instant)
        before = None if after is None else after[0]
        rows = await read_models.billing_periods(organization_id, before, limit + 1)
        return BillingPeriodList(
            as_of=read_models.as_of,
            organization_id=organization_id,
            periods=[billing_period(r) for r in rows[:limit]],
            next_cursor=cursors.next_cursor(
                rows, limit, lambda last: [last["period_start"].isoformat(), ""]
            ),
        )

    return router


def current_usage(
    organization_id: str,
    row: asyncpg.Record,
    now: datetime,
    as_of: datetime | None,
    days: Window,
    rate: Decimal,
) -> Usage:
    """The usage report of `row` (Reader.current_period); a calendar month if it has no
    period; run out at `rate` credits per day (the forecast of `days`)."""
    start, end = period_of(row)
    plan_credits = row["plan_credits"] or billing.ZERO
    extra = row["extra_credits"] or billing.ZERO
    used = row["credits_used"] or billing.ZERO
    total = billing.total(plan_credits, extra)
    remaining = billing.remaining(plan_credits, extra, used)
    return Usage(
        as_of=as_of,
        organization_id=organization_id,
        period_start=start,
        reset_at=end,
        plan=row["plan"] or row["organization_plan"],
        plan_credits=plan_credits,
        extra_credits=extra,
        total_credits=total,
        credits_used=used,
        credits_remaining=remaining,
        percent_used=billing.percent_used(used, total),
        average_daily_usage=billing.average_daily_usage(used, start, end, now, row["timezone"]),
        runs_out_at=run_out(days.forecast_at, end, remaining, rate).runs_out_at,
        auto_purchase=AutoPurchase(
            enabled=row["ap_enabled"],
            threshold_credits=row["auto_purchase_threshold"],
            pack_credits=row["auto_purchase_pack"],
            max_credits_per_period=(
                plan_credits if row["auto_purchase_cap"] is None else row["auto_purchase_cap"]
            ),
        ),
    )


async def burn_rate(
    read_models: Reader, organization_id: str, days: Window
) -> tuple[Decimal, date | None]:
    """The organization's burn rate over `days`, and its first day of usage (None: none)."""
    rows = await read_models.burn_days([organization_id], days.first_day, days.today)
    credits = {r["day"]: r["credits_used"] for r in rows if r["day"] is not None}
    first_usage: date | None = rows[0]["first_day"] if rows else None
    return days.rate(credits, first_usage), first_usage


async def day_range(
    read_models: Reader,
    organization_id: str,
    first: date | None,
    last: date | None,
    days_back: int | None = None,
) -> tuple[date, date]:
    """The days a daily trend covers: `first` to `last` as asked, each by default the current
    billing period's first day (or `days_back` days before `last`) and today, in the
    organization's time zone; 422 when they are reversed or too many."""
    if first is None or last is None:
        now = datetime.now(UTC)
        row = await read_models.current_period(organization_id, now)
        start, end = period_of(row)
        period_first, today = billing.local_days(start, end, now, row["timezone"])
        last = last or today
        if first is None:
            first = period_first if days_back is None else last - timedelta(days=days_back - 1)
    if last < first:
        raise bad_input("to", "`to` is before `from`")
    if (last - first).days > MAX_DAYS:
        raise bad_input("to", f"at most {MAX_DAYS} days at once")
    return first, last


def period_of(row: asyncpg.Record) -> tuple[datetime, datetime]:
    """The bounds of the current period of `row` (Reader.current_period).

    Without one, the stand-in the projector counts usage in: the UTC calendar
    month, clipped by the subscribed periods on either side.
    """
    if row["period_start"] is None:
        return row["standin_start"], row["standin_end"]
    start: datetime = row["period_start"]
    end: datetime = row["period_end"]
    return start, end


def billing_period(row: asyncpg.Record) -> BillingPeriod:
    """One row of Reader.billing_periods, with the credits left in it."""
    left = billing.remaining(row["plan_credits"], row["extra_credits"], row["credits_used"])
    return BillingPeriod(**dict(row), credits_remaining=left)
