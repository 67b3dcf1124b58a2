from __future__ import annotations

import datetime as dt

import pytest

from pyteleport.clock import FakeClock
from pyteleport.errors import LimitExceededError
from pyteleport.policy.ratelimit import RateLimiter


def test_burst_then_refill_per_address() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=1.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("10.0.0.1")
    with pytest.raises(LimitExceededError, match="rate limit exceeded"):
        limiter.check("10.0.0.1")
    limiter.check("10.0.0.2")  # another address has its own bucket
    clock.advance(dt.timedelta(seconds=1))
    limiter.check("10.0.0.1")


def test_refusal_says_when_a_token_is_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=0.25, burst=1, clock=clock)
    limiter.check("10.0.0.1")
    with pytest.raises(LimitExceededError) as refused:
        limiter.check("10.0.0.1")
    assert refused.value.retry_after_s == 4  # one token at 0.25/s
    clock.advance(dt.timedelta(seconds=2.5))
    with pytest.raises(LimitExceededError) as refused:
        limiter.check("10.0.0.1")
    assert refused.value.retry_after_s == 2  # 1.5 s left, rounded up
    fast = RateLimiter(rate_per_s=100.0, burst=1, clock=clock)
    fast.check("10.0.0.1")
    with pytest.raises(LimitExceededError) as refused:
        fast.check("10.0.0.1")
    assert refused.value.retry_after_s == 1  # never below one second
