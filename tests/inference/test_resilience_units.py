"""The resilience primitives on their own: backoff bounds, Retry-After, budget, breaker states."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from switchyard.inference.config import Resilience
from switchyard.inference.resilience import (
    BreakerState,
    CircuitBreaker,
    RetryBudget,
    backoff_delay,
    parse_retry_after,
)


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read through a call so the checker does not narrow it."""
    return breaker.state


def test_backoff_is_full_jitter_and_capped() -> None:
    delays = [backoff_delay(3, base=0.1, cap=0.5) for _ in range(500)]
    assert all(0 <= d <= 0.5 for d in delays)
    assert max(delays) > 0.4  # spread over the whole range, not a fixed step
    assert min(delays) < 0.1


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [("1", 1, 1), ("2.5", 2.5, 2.5), (None, None, None), ("soon", None, None), ("-3", 0, 0)],
)
def test_retry_after_seconds(value: str | None, low: float | None, high: float | None) -> None:
    parsed = parse_retry_after(value)
    if low is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert low <= parsed <= (high or low)


def test_retry_after_http_date() -> None:
    parsed = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert parsed is not None
    assert 28 <= parsed <= 31


def test_budget_allows_a_fraction_of_traffic() -> None:
    budget = RetryBudget(Resilience(retry_budget_ratio=0.2, retry_budget_min=1))
    for _ in range(50):
        budget.record_request()
    granted = sum(budget.try_spend() for _ in range(100))
    assert granted == 10


def test_budget_minimum_for_quiet_deployments() -> None:
    budget = RetryBudget(Resilience(retry_budget_ratio=0.2, retry_budget_min=3))
    budget.record_request()
    assert [budget.try_spend() for _ in range(5)] == [True, True, True, False, False]


def test_breaker_opens_on_consecutive_failures_and_probes_after_cooldown() -> None:
    breaker = CircuitBreaker(
        Resilience(breaker_consecutive_failures=3, breaker_cooldown=0.2, breaker_half_open_probes=1)
    )
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    time.sleep(0.25)
    assert breaker.allow()  # the one probe
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow()  # no second probe at once
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_probe_reopens_and_retry_after_extends_cooldown() -> None:
    breaker = CircuitBreaker(Resilience(breaker_consecutive_failures=1, breaker_cooldown=0.1))
    breaker.record_failure(retry_after=5)
    assert breaker.retry_in() > 4  # at least the upstream's Retry-After
    breaker.opened_until = time.monotonic()  # skip the wait
    assert breaker.allow()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN


def test_breaker_opens_on_failure_ratio() -> None:
    breaker = CircuitBreaker(
        Resilience(
            breaker_consecutive_failures=100, breaker_failure_ratio=0.5, breaker_min_calls=10
        )
    )
    for i in range(10):
        if i % 2:
            breaker.record_failure()
        else:
            breaker.record_success()
    assert state_of(breaker) is BreakerState.OPEN


def test_windows_forget_old_events_without_being_asked() -> None:
    """A healthy deployment only adds successes; the windows must not grow without bound."""
    breaker = CircuitBreaker(Resilience(breaker_window=0.05))
    budget = RetryBudget(Resilience(retry_budget_window=0.05))
    for _ in range(1000):
        breaker.record_success()
        budget.record_request()
    time.sleep(0.06)
    breaker.record_success()
    budget.record_request()
    assert len(breaker._calls._events) == 1
    assert len(budget._requests._events) == 1
