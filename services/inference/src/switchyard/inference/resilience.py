"""Bounded retries, retry budgets and circuit breakers — the parts that stop an outage from
multiplying load or cost.

All of it is in-process state of one replica; nothing here does I/O.
"""

from __future__ import annotations

import email.utils
import enum
import random
import time

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
    """Events counted over a sliding window of `seconds`, in `slots` equal slots of time.

    Memory and work per event are the same at any rate; a timestamp per event would hold
    `rate * seconds` of them (3.3 MiB at 2,700 requests/s with the default 30 s and 10 s
    windows). An event leaves the count between `seconds - seconds / slots` and `seconds` after
    it happened (its slot leaves whole), as in resilience4j's time-based windows.
    """

    __slots__ = ("_counts", "_ticks", "_width", "seconds")

    def __init__(self, seconds: float, slots: int = 10) -> None:
        self.seconds = seconds
        self._width = seconds / slots
        self._counts = [0] * slots
        self._ticks = [-1] * slots  # which slot of time each count belongs to (now // width)

    def add(self, now: float) -> None:
        tick = int(now // self._width)
        i = tick % len(self._counts)
        if self._ticks[i] == tick:
            self._counts[i] += 1
        else:  # the slot's last use has left the window: reuse it
            self._ticks[i] = tick
            self._counts[i] = 1

    def count(self, now: float) -> int:
        oldest = int(now // self._width) - len(self._counts) + 1
        return sum(c for c, t in zip(self._counts, self._ticks, strict=True) if t >= oldest)


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
