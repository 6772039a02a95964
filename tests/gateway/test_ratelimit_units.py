"""The token bucket: bursts, refill, overrides, unlimited tenants, and the retry hint."""

from __future__ import annotations

import pytest

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.gateway.ratelimit import RateLimiter, parse_overrides


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def refused(limiter: RateLimiter, tenant: str) -> SwitchyardError | None:
    try:
        limiter.check(tenant)
    except SwitchyardError as exc:
        return exc
    return None


def test_burst_then_refill(clock: Clock) -> None:
    limiter = RateLimiter(rate=2, burst_seconds=2, clock=clock)  # 2/s, a bucket of 4
    assert [refused(limiter, "t") for _ in range(4)] == [None] * 4
    error = refused(limiter, "t")
    assert error is not None
    assert error.code == ErrorCode.RATE_LIMITED
    assert error.body.details["retry_after"] == 1
    clock.now += 0.5  # one token back
    assert refused(limiter, "t") is None
    assert refused(limiter, "t") is not None
    clock.now += 60  # refills up to the bucket, no more
    assert [refused(limiter, "t") for _ in range(4)] == [None] * 4
    assert refused(limiter, "t") is not None


def test_overrides_and_unlimited(clock: Clock) -> None:
    limiter = RateLimiter(0, 1, parse_overrides("slow=1, vip=0"), clock=clock)
    for _ in range(100):
        limiter.check("anyone")  # no default limit
        limiter.check("vip")
    assert refused(limiter, "slow") is None
    error = refused(limiter, "slow")
    assert error is not None
    assert "1 requests/s" in error.body.message


@pytest.mark.parametrize("raw", ["x", "=3", "a=-1", "a=many"])
def test_bad_overrides(raw: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_overrides(raw)
