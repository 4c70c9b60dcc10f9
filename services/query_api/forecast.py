"""When an organization's credits run out at its recent burn rate: pure, no I/O.

The method (the README's "Run-out forecast" says the same):

- **Burn rate**: credits per day over the trailing 7 local days of the organization's
  zone, today included, weighted toward recent days: today weighs 7, yesterday 6, ...
  six days ago 1. Each day counts for the share of it that has passed (today: since
  local midnight, at least an hour so that a few minutes past midnight do not make a
  forecast of their own; earlier days: 1), so the rate is
  `sum(weight * credits) / sum(weight * share)`. Days before the organization's first
  day of usage are left out, so a new organization is forecast from the days it has.
- **Run-out**: `forecast_at + credits remaining / rate` (24-hour days); `forecast_at`
  itself when none are left; none at a rate of 0. Compared with the reset date
  (`runs_out_before_reset`), and the credits needed to reach the reset at this rate
  beyond those remaining (`credits_needed_to_reset`, rounded up).
- **Floor**: a scheduled run costs at least one credit even when it finds no data, so
  part of a burn is there whatever the data: each scheduled run's first credit (its
  credits when fewer), weighed like usage (`floor_per_day`).

A forecast is remade each minute (`forecast_at` is the minute it is made for), so an
answer that carries one holds a minute and no longer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

from services.query_api.billing import DAILY_USAGE_STEP, ZERO

WINDOW_DAYS = 7
"""The local days a burn rate is weighed over, today included."""
LEAST_OF_TODAY = Decimal(1) / 24
"""The least share of today that counts as passed (an hour)."""
STEP = timedelta(minutes=1)
"""How long a forecast holds: it is made for the minute."""
DAY_SECONDS = 86_400
MICROSECONDS = Decimal(1_000_000)


@dataclass(frozen=True)
class Window:
    """The local days a forecast weighs, and how much of each has passed."""

    forecast_at: datetime
    zone: str
    today: date
    today_share: Decimal

    @property
    def first_day(self) -> date:
        return self.today - timedelta(days=WINDOW_DAYS - 1)

    def weight(self, day: date) -> int:
        """7 for today, down to 1 for the window's first day; 0 outside the window."""
        back = (self.today - day).days
        return WINDOW_DAYS - back if 0 <= back < WINDOW_DAYS else 0

    def share(self, day: date) -> Decimal:
        return self.today_share if day == self.today else Decimal(1)

    def rate(self, credits: Mapping[date, Decimal], first_usage: date | None) -> Decimal:
        """Credits per day over the window from each day's `credits`, from `first_usage`
        (the organization's first day of usage; None: it has none) on; 0 when corrections
        outweigh the usage."""
        if first_usage is None:
            return ZERO
        weighed = [day for day in self.days() if day >= first_usage]
        if not weighed:
            return ZERO
        used = sum((self.weight(d) * credits.get(d, ZERO) for d in weighed), ZERO)
        passed = sum((self.weight(d) * self.share(d) for d in weighed), ZERO)
        return max(ZERO, used / passed).quantize(DAILY_USAGE_STEP)

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(WINDOW_DAYS)]

    @property
    def holds_until(self) -> datetime:
        return self.forecast_at + STEP

    @property
    def starts_at(self) -> datetime:
        """The first instant of the window: local midnight of its first day."""
        return datetime.combine(self.first_day, datetime.min.time(), ZoneInfo(self.zone))


def window(now: datetime, zone: str) -> Window:
    """The window of a forecast made at `now` (to the minute) for an organization in `zone`."""
    at = now.astimezone(UTC).replace(second=0, microsecond=0)
    local = ZoneInfo(zone)
    today = at.astimezone(local).date()
    # In UTC: between two times of one zone, Python subtracts wall clocks (24 h a day).
    midnight = datetime.combine(today, datetime.min.time(), local).astimezone(UTC)
    next_day = datetime.combine(today + timedelta(days=1), datetime.min.time(), local)
    share = Decimal((at - midnight) // timedelta(seconds=1)) / Decimal(
        (next_day.astimezone(UTC) - midnight) // timedelta(seconds=1)
    )
    return Window(at, zone, today, max(share, LEAST_OF_TODAY))


@dataclass(frozen=True)
class RunOut:
    """When credits reach 0 at a rate, against the reset."""

    runs_out_at: datetime | None
    runs_out_before_reset: bool
    credits_needed_to_reset: Decimal


def run_out(at: datetime, reset_at: datetime, remaining: Decimal, rate: Decimal) -> RunOut:
    """Credits `remaining` at `at` burnt at `rate` per day, with the period resetting at
    `reset_at`."""
    days_to_reset = Decimal((reset_at - at) // timedelta(microseconds=1)) / (
        DAY_SECONDS * MICROSECONDS
    )
    needed = max(ZERO, rate * max(days_to_reset, ZERO) - max(remaining, ZERO))
    needed = needed.quantize(DAILY_USAGE_STEP, rounding=ROUND_CEILING)
    if remaining <= 0:
        return RunOut(at, at < reset_at, needed)
    if rate <= 0:
        return RunOut(None, False, needed)
    micros = (remaining / rate * DAY_SECONDS * MICROSECONDS).to_integral_value()
    try:
        when = at + timedelta(microseconds=int(micros))
    except OverflowError:  # beyond the calendar: never, as far as a forecast can say
        return RunOut(None, False, needed)
    return RunOut(when, when < reset_at, needed)
