"""When an answer about the clock stops holding, and which client copies still match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.query_api.freshness import Freshness, next_change

NOW = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)


def period(end: datetime, zone: str) -> dict[str, object]:
    return {"period_start": NOW - timedelta(days=3), "period_end": end, "timezone": zone}


def test_an_answer_about_today_holds_until_local_midnight_or_the_periods_end() -> None:
    later = NOW + timedelta(days=10)

    # 20:00 UTC is 01:30 on the 3rd in Kolkata: its day ends at 18:30 UTC on the 3rd.
    assert next_change(period(later, "Asia/Kolkata"), NOW) == datetime(  # type: ignore[arg-type]
        2026, 12, 3, 18, 30, tzinfo=UTC
    )
    # 12:00 in Los Angeles: midnight there is 08:00 UTC on the 3rd.
    assert next_change(period(later, "America/Los_Angeles"), NOW) == datetime(  # type: ignore[arg-type]
        2026, 12, 3, 8, 0, tzinfo=UTC
    )
    soon = NOW + timedelta(minutes=7)
    assert next_change(period(soon, "UTC"), NOW) == soon  # type: ignore[arg-type]
    standin = {"period_start": None, "standin_end": soon, "timezone": "UTC"}
    assert next_change(standin, NOW) == soon  # type: ignore[arg-type]


def test_a_copy_matches_while_the_state_is_the_same_and_its_time_has_not_passed() -> None:
    fresh = Freshness(as_of=None, digest="abc", now=NOW)
    fresh.until(NOW + timedelta(hours=1))
    tag = fresh.etag

    assert fresh.matches(tag)
    assert fresh.matches(f'"zzz.0", {tag}')
    assert fresh.matches(tag.removeprefix("W/"))
    assert not fresh.matches(tag.replace("abc", "abd"))
    assert not fresh.matches('W/"abc.1"'), "held until 1970"
    assert not fresh.matches('W/"abc"')
    assert not fresh.matches("*")
    assert not fresh.matches(None)
    assert Freshness(as_of=None, digest="abc", now=NOW).matches('W/"abc.0"')
