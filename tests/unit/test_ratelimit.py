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
