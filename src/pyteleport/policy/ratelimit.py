"""Token-bucket rate limits keyed by source address; pure, with the clock passed in."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from pyteleport.clock import Clock
from pyteleport.errors import LimitExceededError

RATE_LIMIT_MESSAGE = "rate limit exceeded: too many requests from this address, try again later"
# A bucket that never refills: ask clients to come back in an hour rather than hammer it.
RETRY_AFTER_NEVER_S = 3600


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: dt.datetime


class RateLimiter:
    """``rate_per_s`` tokens a second refill a bucket of ``burst`` per key."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock, max_keys: int = 65536) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise LimitExceededError."""
        now = self._clock.now()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now)
            bucket = _Bucket(tokens=float(self._burst), updated=now)
            self._buckets[key] = bucket
        elapsed = max(0.0, (now - bucket.updated).total_seconds())
        bucket.tokens = min(float(self._burst), bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            raise LimitExceededError(RATE_LIMIT_MESSAGE, self._seconds_until_token(bucket))
        bucket.tokens -= 1.0

    def _seconds_until_token(self, bucket: _Bucket) -> int:
        """Whole seconds until the bucket holds one token again (rounded up, at least 1)."""
        if self._rate <= 0:
            return RETRY_AFTER_NEVER_S
        return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))

    def _evict(self, now: dt.datetime) -> None:
        # Drop buckets that have refilled completely: they carry no state worth keeping.
        full_after = self._burst / self._rate if self._rate else 0.0
        stale = [
            k for k, b in self._buckets.items() if (now - b.updated).total_seconds() > full_after
        ]
        for key in stale or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]
