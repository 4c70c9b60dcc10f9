"""The in-memory rate limit (GCRA): a burst of N per period, then one each period/N."""

from __future__ import annotations

import pytest
from limits import parse_many

from services.query_api.limits import InMemoryLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_burst_of_n_then_one_each_period_over_n(clock: Clock) -> None:
    limiter = InMemoryLimiter(parse_many("5/minute"), clock)
    assert [await limiter.hit("a") for _ in range(5)] == [None] * 5
    refused = await limiter.hit("a")
    assert refused is not None
    item, wait = refused
    assert str(item) == "5 per 1 minute"
    assert wait == pytest.approx(12.0)
    assert await limiter.hit("b") is None, "another key has its own allowance"
    clock.now += 11.9
    assert await limiter.hit("a") is not None
    clock.now += 0.2
    assert await limiter.hit("a") is None
    assert await limiter.hit("a") is not None, "one more only, after 12 s"


async def test_a_refused_request_uses_no_allowance_of_any_limit(clock: Clock) -> None:
    limiter = InMemoryLimiter(parse_many("2/second;3/minute"), clock)
    assert await limiter.hit("a") is None
    assert await limiter.hit("a") is None
    second, _ = await limiter.hit("a") or (None, 0)
    assert str(second) == "2 per 1 second"
    clock.now += 1
    assert await limiter.hit("a") is None
    minute, wait = await limiter.hit("a") or (None, 0)
    assert str(minute) == "3 per 1 minute"
    assert wait == pytest.approx(19.0)  # the minute's allowance returns one each 20 s
    clock.now += 19
    assert await limiter.hit("a") is None


async def test_idle_keys_are_forgotten(clock: Clock) -> None:
    limiter = InMemoryLimiter(parse_many("10/second"), clock)
    for key in range(100):
        await limiter.hit(f"k{key}")
    clock.now += InMemoryLimiter.PRUNE_EVERY_S + 1
    await limiter.hit("fresh")
    assert list(limiter.free_at) == ["fresh"]
