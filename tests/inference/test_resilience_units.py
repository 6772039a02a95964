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
    _Window,
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
    """A healthy deployment only adds successes: what left the window no longer counts."""
    breaker = CircuitBreaker(Resilience(breaker_window=0.05))
    budget = RetryBudget(Resilience(retry_budget_window=0.05))
    for _ in range(1000):
        breaker.record_success()
        budget.record_request()
    time.sleep(0.06)
    breaker.record_success()
    budget.record_request()
    now = time.monotonic()
    assert breaker._calls.count(now) == 1
    assert budget._requests.count(now) == 1


def test_window_counts_by_slot_and_drops_a_slot_whole() -> None:
    window = _Window(10.0, slots=10)  # slots of one second
    for _ in range(3):
        window.add(100.2)
    window.add(100.9)
    window.add(105.5)
    assert window.count(105.5) == 5
    assert window.count(109.99) == 5  # the 100th second is still inside [100, 110)
    assert window.count(110.0) == 1  # ... and leaves whole: 9.1 to 9.8 s after its events
    assert window.count(114.99) == 1
    assert window.count(115.0) == 0  # 9.5 s after the last event: its slot's start + 10 s


def test_window_reuses_a_slot_only_for_its_own_time() -> None:
    window = _Window(10.0, slots=10)
    window.add(100.5)
    window.add(110.5)  # the same slot, ten seconds on: the old count is gone, not added to
    assert window.count(110.5) == 1
    window.add(110.7)
    assert window.count(111.0) == 2
    assert window.count(1000.0) == 0  # long quiet: every slot is stale


def test_window_keeps_counting_at_any_rate() -> None:
    """A count per slot, not a timestamp per event: 100,000 events in one window are counted."""
    window = _Window(30.0)  # slots of 3 s
    for i in range(100_000):
        window.add(50.1 + i * 0.00019)  # 50.1 to 69.1 s, about 5,300 a second
    assert window.count(69.2) == 100_000
    # At 85 s the window holds the slots from 57 s on: events 36,316 (57.00001 s) and later.
    assert window.count(85.0) == 100_000 - 36_316
