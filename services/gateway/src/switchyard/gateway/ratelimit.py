"""Per-tenant rate limits: a token bucket per tenant, in each gateway replica.

Each replica enforces the limit on the requests it serves (with N replicas behind a load balancer a
tenant gets up to N times the rate); the check is a few arithmetic operations on the request path,
with no network round trip. A refused request gets `rate_limited` (429) with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from switchyard.contracts import ErrorCode, SwitchyardError


class RateLimiter:
    """Token buckets: `rate` requests per second per tenant (`overrides` for some tenants; 0 is
    unlimited), each bucket holding `burst_seconds` worth of requests (at least one)."""

    def __init__(
        self,
        rate: float,
        burst_seconds: float,
        overrides: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._rate = rate
        self._burst_seconds = burst_seconds
        self._overrides = overrides or {}
        self._buckets: dict[str, list[float]] = {}  # tenant → [tokens, last refill]

    def check(self, tenant: str) -> None:
        """Take one token for `tenant`, or raise `rate_limited` saying when to come back."""
        rate = self._overrides.get(tenant, self._rate)
        if rate <= 0:
            return
        burst = max(1.0, rate * self._burst_seconds)
        now = self._clock()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = [burst, now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return
        bucket[0] = tokens
        wait = (1.0 - tokens) / rate
        raise SwitchyardError(
            ErrorCode.RATE_LIMITED,
            f"Rate limit of {rate:g} requests/s reached for this tenant; retry in {wait:.2f}s.",
            retry_after=max(1, math.ceil(wait)),
        )


def parse_overrides(raw: str) -> dict[str, float]:
    """`tenant1=50,tenant2=200` → {tenant: requests per second} (0 means unlimited)."""
    table: dict[str, float] = {}
    for item in raw.split(","):
        tenant, sep, value = item.strip().partition("=")
        if not item.strip():
            continue
        if not sep or not tenant.strip():
            raise ValueError(f"rate limit override {item.strip()!r} is not tenant=rate")
        rate = float(value)
        if rate < 0 or math.isnan(rate):
            raise ValueError(f"rate limit of {tenant.strip()!r} must be >= 0")
        table[tenant.strip()] = rate
    return table
