"""The API's billing arithmetic: exact decimals, and the calendar month as the fallback period."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.query_api import billing

D = Decimal
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


def test_total_is_plan_plus_extra_credits() -> None:
    assert billing.total(D("10000"), D("500.25")) == D("10500.25")


@pytest.mark.parametrize(
    ("plan", "extra", "used", "left"),
    [
        (D("10000"), D("500"), D("7321.25"), D("3178.75")),
        (D("0.1"), D("0.2"), D("0.3"), D("0")),  # exact: no float residue
        (D("100"), D("0"), D("100"), D("0")),
        (D("100"), D("0"), D("100.000001"), D("-0.000001")),
        (D("100"), D("50"), D("400"), D("-250")),
        (D("0"), D("0"), D("7"), D("-7")),
    ],
)
def test_remaining_is_plan_plus_extra_minus_used_and_may_go_negative(
    plan: Decimal, extra: Decimal, used: Decimal, left: Decimal
) -> None:
    assert billing.remaining(plan, extra, used) == left


@pytest.mark.parametrize(
    ("used", "total", "percent"),
    [
        (D("7321.25"), D("10500"), D("69.73")),
        (D("1"), D("3"), D("33.33")),
        (D("2"), D("3"), D("66.67")),
        (D("1"), D("8"), D("12.50")),
        (D("0.125"), D("100"), D("0.12")),  # half to even, as Decimal quantizes
        (D("0.135"), D("100"), D("0.14")),
        (D("150"), D("100"), D("150.00")),
        (D("0"), D("100"), D("0.00")),
    ],
)
def test_percent_used_is_quantized_to_hundredths(
    used: Decimal, total: Decimal, percent: Decimal
) -> None:
    result = billing.percent_used(used, total)

    assert result == percent
    assert result.as_tuple().exponent == -2


def test_percent_used_of_a_period_without_credits_and_usage_is_zero() -> None:
    result = billing.percent_used(D("0"), D("0"))

    assert result == 0
    assert str(result) == "0"


def test_usage_in_a_period_without_credits_shows_as_fully_used() -> None:
    # REVIEW B9: used 5, total 0 was reported as 0 % and never gauged.
    assert billing.percent_used(D("5"), D("0")) == D("100.00")
    assert billing.used_ratio(D("5"), D("0")) == D("Infinity")


@pytest.mark.parametrize(
    ("used", "total", "ratio"),
    [
        (D("3"), D("4"), D("0.75")),
        (D("150"), D("100"), D("1.5")),
        (D("0"), D("10"), D("0")),
        (D("1"), D("3"), D("0.3333333333333333333333333333")),
    ],
)
def test_used_ratio_is_used_over_total(used: Decimal, total: Decimal, ratio: Decimal) -> None:
    assert billing.used_ratio(used, total) == ratio


def test_used_ratio_of_a_period_without_credits_or_usage_is_zero() -> None:
    assert billing.used_ratio(D("0"), D("0")) == 0


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (NOV_1 - timedelta(days=3), 1),  # not started yet: never fewer than one day
        (NOV_1 - timedelta(microseconds=1), 1),
        (NOV_1, 1),
        (NOV_1 + timedelta(hours=23, minutes=59), 1),
        (NOV_1 + timedelta(days=1), 2),
        (datetime(2026, 11, 24, 12, tzinfo=UTC), 24),
        (DEC_1 - timedelta(microseconds=1), 30),
        (DEC_1, 30),  # the end is exclusive: a 30-day period has 30 days
        (DEC_1 + timedelta(days=40), 30),  # ended: no more days than it has
    ],
)
def test_days_counted_run_from_the_period_start_to_now_or_its_end(now: datetime, days: int) -> None:
    assert billing.days_counted(NOV_1, DEC_1, now) == days


@pytest.mark.parametrize(
    ("used", "now", "average"),
    [
        (D("100"), datetime(2026, 11, 3, 8, tzinfo=UTC), D("33.333333")),
        (D("200"), datetime(2026, 11, 3, 8, tzinfo=UTC), D("66.666667")),
        (D("7321.25"), datetime(2026, 11, 24, tzinfo=UTC), D("305.052083")),
        (D("5"), NOV_1 - timedelta(days=2), D("5")),  # not started: all on one day
        (D("300"), DEC_1 + timedelta(days=5), D("10")),  # ended: over its 30 days
        (D("0"), datetime(2026, 11, 10, tzinfo=UTC), D("0")),
        (D("-3"), datetime(2026, 11, 3, tzinfo=UTC), D("-1")),
    ],
)
def test_average_daily_usage_is_quantized_to_millionths(
    used: Decimal, now: datetime, average: Decimal
) -> None:
    result = billing.average_daily_usage(used, NOV_1, DEC_1, now)

    assert result == average
    assert result.as_tuple().exponent == -6


@pytest.mark.parametrize(
    ("zone", "start", "now", "first", "today"),
    [
        # REVIEW B6, east: 22:07Z is already the next day in Tokyo; it must be in the range.
        (
            "Asia/Tokyo",
            datetime(2026, 10, 31, 15, tzinfo=UTC),  # Nov 1, 00:00 in Tokyo
            datetime(2026, 11, 25, 22, 7, tzinfo=UTC),
            date(2026, 11, 1),
            date(2026, 11, 26),
        ),
        # West: 02:00Z is still yesterday in Los Angeles; tomorrow is not "today".
        (
            "America/Los_Angeles",
            datetime(2026, 11, 1, 7, tzinfo=UTC),  # Nov 1, 00:00 in Los Angeles
            datetime(2026, 11, 25, 2, tzinfo=UTC),
            date(2026, 11, 1),
            date(2026, 11, 24),
        ),
    ],
)
def test_the_default_days_are_the_organizations_local_days_today_included(
    zone: str, start: datetime, now: datetime, first: date, today: date
) -> None:
    end = start + timedelta(days=30)

    assert billing.local_days(start, end, now, zone) == (first, today)
    assert billing.days_counted(start, end, now, zone) == (today - first).days + 1
