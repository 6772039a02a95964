"""Bounded retries, retry budgets and circuit breakers — the parts that stop an outage from
multiplying load or cost.

All of it is in-process state of one replica; nothing here does I/O.
"""

from __future__ import annotations

import email.utils
import enum
import random
import time
from collections import deque

from switchyard.contracts import ErrorCode
from switchyard.inference.config import Resilience

# Failures worth another attempt at the same deployment (the request may succeed next time).
RETRYABLE = frozenset(
    {
        ErrorCode.PROVIDER_TIMEOUT,
        ErrorCode.PROVIDER_UNAVAILABLE,
        ErrorCode.PROVIDER_ERROR,
        ErrorCode.UPSTREAM_RATE_LIMITED,
    }
)
# Failures after which another deployment may still answer.
FALLBACK = RETRYABLE | {
    ErrorCode.PROVIDER_BAD_RESPONSE,
    ErrorCode.OVERLOADED,
    ErrorCode.CIRCUIT_OPEN,
}
# Failures that say the deployment itself is unhealthy (client mistakes do not count).
UNHEALTHY = RETRYABLE | {ErrorCode.PROVIDER_BAD_RESPONSE}


def backoff_delay(retry: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base·2^retry))."""
    return random.uniform(0, min(cap, base * (2**retry)))


def parse_retry_after(value: object) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Window:
    """Timestamps of events in a sliding window."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._events: deque[float] = deque()

    def add(self, now: float) -> None:
        self._events.append(now)
        self._prune(now)  # on every add: a healthy deployment never calls count()

    def count(self, now: float) -> int:
        self._prune(now)
        return len(self._events)

    def _prune(self, now: float) -> None:
        horizon = now - self.seconds
        while self._events and self._events[0] < horizon:
            self._events.popleft()


class RetryBudget:
    """Retries may add at most `ratio` of the first attempts seen in a sliding window.

    `minimum` retries per window are always allowed, so a quiet deployment can still retry.
    """

    def __init__(self, config: Resilience) -> None:
        self._ratio = config.retry_budget_ratio
        self._minimum = config.retry_budget_min
        self._requests = _Window(config.retry_budget_window)
        self._retries = _Window(config.retry_budget_window)

    def record_request(self) -> None:
        """Count a first attempt."""
        self._requests.add(time.monotonic())

    def try_spend(self) -> bool:
        """Take one retry from the budget, if any is left."""
        now = time.monotonic()
        allowed = max(self._minimum, int(self._ratio * self._requests.count(now)))
        if self._retries.count(now) >= allowed:
            return False
        self._retries.add(now)
        return True


class BreakerState(enum.StrEnum):
    """States of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after consecutive failures or a failure ratio in a window; after a cooldown (at least
    any Retry-After) lets a limited number of probes through; closes on a probe's success."""

    def __init__(self, config: Resilience) -> None:
        self._config = config
        self.state = BreakerState.CLOSED
        self.opened_until = 0.0
        self.consecutive_failures = 0
        self._calls = _Window(config.breaker_window)
        self._failures = _Window(config.breaker_window)
        self._probes = 0

    def allow(self) -> bool:
        """Whether an attempt may go to the deployment now (half-open: as a probe)."""
        if self.state is BreakerState.OPEN:
            if time.monotonic() < self.opened_until:
                return False
            self.state = BreakerState.HALF_OPEN
            self._probes = 0
        if self.state is BreakerState.HALF_OPEN:
            if self._probes >= self._config.breaker_half_open_probes:
                return False
            self._probes += 1
        return True

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        return max(0.0, self.opened_until - time.monotonic())

    def record_success(self) -> None:
        """An attempt succeeded: a probe's success closes the breaker."""
        self._calls.add(time.monotonic())
        self.consecutive_failures = 0
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.CLOSED
            self._probes = 0

    def record_failure(self, retry_after: float | None = None) -> None:
        """An attempt failed in a way that says the deployment is unhealthy."""
        now = time.monotonic()
        self._calls.add(now)
        self._failures.add(now)
        self.consecutive_failures += 1
        config = self._config
        calls = self._calls.count(now)
        by_ratio = (
            calls >= config.breaker_min_calls
            and self._failures.count(now) / calls >= config.breaker_failure_ratio
        )
        if (
            self.state is BreakerState.HALF_OPEN
            or self.consecutive_failures >= config.breaker_consecutive_failures
            or by_ratio
        ):
            self.state = BreakerState.OPEN
            self.opened_until = now + max(config.breaker_cooldown, retry_after or 0.0)
            self._probes = 0

    def record_neutral(self) -> None:
        """An attempt ended without telling anything about health (cancelled, client error)."""
        if self.state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1
