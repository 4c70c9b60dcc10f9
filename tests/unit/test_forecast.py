"""The run-out forecast's arithmetic on histories whose answer is known by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.query_api.forecast import run_out, window

D = Decimal
NOON = datetime(2026, 11, 24, 12, 0, 41, 5, tzinfo=UTC)
"""Today (Nov 24) half gone, UTC; the forecast is made for 12:00."""
RESET = datetime(2026, 12, 1, tzinfo=UTC)
TODAY = date(2026, 11, 24)


def back(days: int) -> date:
    return TODAY - timedelta(days=days)


def test_a_constant_burn_is_its_daily_figure_today_counting_for_the_half_gone() -> None:
    days = window(NOON, "UTC")
    credits = {back(n): D(100) for n in range(1, 7)} | {TODAY: D(50)}

    assert days.forecast_at == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert days.holds_until == datetime(2026, 11, 24, 12, 1, tzinfo=UTC)
    assert (days.first_day, days.today, days.today_share) == (back(6), TODAY, D("0.5"))
    assert days.rate(credits, first_usage=date(2026, 1, 1)) == D(100)


def test_a_constant_burn_runs_out_after_the_remaining_days_and_says_what_the_reset_needs() -> None:
    at = window(NOON, "UTC").forecast_at

    lasting = run_out(at, RESET, remaining=D(1000), rate=D(100))
    short = run_out(at, RESET, remaining=D(300), rate=D(100))

    assert lasting.runs_out_at == datetime(2026, 12, 4, 12, tzinfo=UTC)  # 10 days on
    assert not lasting.runs_out_before_reset
    assert lasting.credits_needed_to_reset == 0
    assert short.runs_out_at == datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert short.runs_out_before_reset
    assert short.credits_needed_to_reset == D(350)  # 6.5 days to the reset at 100, 300 left


def test_a_spike_yesterday_weighs_more_than_it_would_in_a_plain_average() -> None:
    days = window(NOON, "UTC")
    credits = {back(n): D(100) for n in range(2, 7)} | {back(1): D(1000), TODAY: D(50)}

    rate = days.rate(credits, first_usage=date(2026, 1, 1))

    # (7*50 + 6*1000 + (5+4+3+2+1)*100) / (7*0.5 + 6+5+4+3+2+1) = 7850 / 24.5
    assert rate == D("320.408163")
    plain = sum(credits.values()) / D("6.5")
    assert rate > plain


def test_a_new_organization_is_forecast_from_the_one_day_it_has() -> None:
    six_am = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    just_after_midnight = datetime(2026, 11, 24, 0, 10, tzinfo=UTC)

    rate = window(six_am, "UTC").rate({TODAY: D(30)}, first_usage=TODAY)
    early = window(just_after_midnight, "UTC").rate({TODAY: D(5)}, first_usage=TODAY)

    assert rate == D(120)  # 30 in a quarter of a day
    assert early == D(120)  # 5 in ten minutes counts as 5 in the least share: an hour


def test_the_days_before_the_first_day_of_usage_are_not_weighed() -> None:
    days = window(NOON, "UTC")

    rate = days.rate({back(1): D(60), TODAY: D(20)}, first_usage=back(1))

    assert rate == D("52.631579")  # (7*20 + 6*60) / (7*0.5 + 6) = 500 / 9.5


def test_no_usage_never_runs_out_and_needs_nothing() -> None:
    days = window(NOON, "UTC")

    rate = days.rate({}, first_usage=None)
    out = run_out(days.forecast_at, RESET, remaining=D(1000), rate=rate)

    assert rate == 0
    assert out.runs_out_at is None
    assert not out.runs_out_before_reset
    assert out.credits_needed_to_reset == 0


def test_credits_already_gone_ran_out_at_the_forecast_and_need_the_shortfall_too() -> None:
    at = window(NOON, "UTC").forecast_at

    out = run_out(at, RESET, remaining=D(-25), rate=D(100))

    assert out.runs_out_at == at
    assert out.runs_out_before_reset
    assert out.credits_needed_to_reset == D(650)  # 6.5 days at 100; the shortfall is spent


def test_corrections_that_outweigh_the_usage_burn_nothing() -> None:
    days = window(NOON, "UTC")

    assert days.rate({back(1): D(-500), TODAY: D(10)}, first_usage=back(3)) == 0


def test_a_burn_too_slow_for_the_calendar_never_runs_out() -> None:
    out = run_out(NOON, RESET, remaining=D(10) ** 20, rate=D("0.000001"))

    assert out.runs_out_at is None
    assert not out.runs_out_before_reset


def test_the_credits_needed_to_reach_the_reset_are_rounded_up() -> None:
    at = window(NOON, "UTC").forecast_at

    out = run_out(at, RESET, remaining=D(0) + D("0.0000001"), rate=D("0.0000003"))

    assert out.credits_needed_to_reset == D("0.000002")  # 0.00000195 up, never down


def test_today_is_the_organizations_today_west_of_utc() -> None:
    # 03:00 UTC on Nov 24 is 22:00 on Nov 23 in New York (EST, UTC-5).
    days = window(datetime(2026, 11, 24, 3, 0, tzinfo=UTC), "America/New_York")

    assert days.today == date(2026, 11, 23)
    assert days.today_share == D(22) / D(24)
    assert days.starts_at == datetime(2026, 11, 17, 5, 0, tzinfo=UTC)  # local midnight
    assert days.weight(date(2026, 11, 23)) == 7
    assert days.weight(date(2026, 11, 17)) == 1
    assert days.weight(date(2026, 11, 16)) == 0
    assert days.weight(date(2026, 11, 24)) == 0


def test_a_day_of_23_hours_counts_the_hours_it_has() -> None:
    # Berlin springs forward on 2026-03-29: local midnight is 23:00 UTC the day before,
    # and 10:00 UTC is 11 real hours into a day of 23.
    days = window(datetime(2026, 3, 29, 10, 0, tzinfo=UTC), "Europe/Berlin")

    assert days.today == date(2026, 3, 29)
    assert days.today_share == D(11) / D(23)
