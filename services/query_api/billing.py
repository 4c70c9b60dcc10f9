"""The credit arithmetic of a billing period as the API reports it: pure, no I/O.

The same rules are also written in SQL, and
tests/integration/test_billing_agrees_with_sql.py checks that the two agree:

- credits remaining = plan + extra - used: `remaining` in
  services/projector/sql/auto_purchase.sql (`plan_credits + extra_credits -
  credits_used`), which decides auto-purchases;
- the period shown without a subscription is the stand-in usage is filed in
  (the UTC calendar month clipped by subscribed periods): CURRENT_PERIOD in
  services/query_api/queries.py against services/projector/sql/credit_events.sql
  (attribute);
- the used ratio, used / (plan + extra): USAGE_GAUGES in
  services/query_api/queries.py, which picks the organizations that get usage
  gauges, most used first.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

ZERO = Decimal(0)
FULL = Decimal("100.00")
INFINITE = Decimal("Infinity")
PERCENT_STEP = Decimal("0.01")
DAILY_USAGE_STEP = Decimal("0.000001")


def total(plan_credits: Decimal, extra_credits: Decimal) -> Decimal:
    """The credits a period has: its plan's plus the extra credits bought in it."""
    return plan_credits + extra_credits


def remaining(plan_credits: Decimal, extra_credits: Decimal, used: Decimal) -> Decimal:
    """The credits left in a period; negative once more than the total is used."""
    return total(plan_credits, extra_credits) - used


def percent_used(used: Decimal, total_credits: Decimal) -> Decimal:
    """Used as a percentage of the total, to 0.01.

    A period with no credits shows 100 once anything is used in it: usage without
    credits is never shown as unused (REVIEW B9).
    """
    if not total_credits:
        return FULL if used > 0 else ZERO
    return (used * 100 / total_credits).quantize(PERCENT_STEP)


def used_ratio(used: Decimal, total_credits: Decimal) -> Decimal:
    """Used / total; infinite for usage in a period without credits, 0 for neither."""
    if not total_credits:
        return INFINITE if used > 0 else ZERO
    return used / total_credits


def local_days(start: datetime, end: datetime, now: datetime, zone: str) -> tuple[date, date]:
    """The first and the last local day of a period so far, today included, in its zone.

    These are the days the read models count in (the period's zone), so "today"
    is the organization's today, east or west of UTC (REVIEW B6). The end is
    exclusive: a period ending at midnight does not count the next day.
    """
    local = ZoneInfo(zone)
    first = start.astimezone(local).date()
    last = min(now, end - timedelta(microseconds=1)).astimezone(local).date()
    return first, max(first, last)


def days_counted(start: datetime, end: datetime, now: datetime, zone: str = "UTC") -> int:
    """The local days of the period so far, today included: at least 1, at most all of them."""
    first, last = local_days(start, end, now, zone)
    return (last - first).days + 1


def average_daily_usage(
    used: Decimal, start: datetime, end: datetime, now: datetime, zone: str = "UTC"
) -> Decimal:
    """Credits used per local day of the period so far, to 0.000001."""
    return (used / days_counted(start, end, now, zone)).quantize(DAILY_USAGE_STEP)
