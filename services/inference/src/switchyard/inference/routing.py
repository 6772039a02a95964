"""Deployment choice: priorities first, weights within a priority, open breakers skipped."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from switchyard.inference.config import Deployment, ModelEntry
from switchyard.inference.resilience import BreakerState, CircuitBreaker, RetryBudget


@dataclass
class DeploymentState:
    """The live state of one deployment: its breaker, retry budget and load."""

    deployment: Deployment
    breaker: CircuitBreaker = field(init=False)
    budget: RetryBudget = field(init=False)
    inflight: int = 0
    calls: int = 0

    def __post_init__(self) -> None:
        self.breaker = CircuitBreaker(self.deployment.resilience)
        self.budget = RetryBudget(self.deployment.resilience)

    @property
    def saturated(self) -> bool:
        """Whether the deployment has as many requests in flight as it may."""
        return self.inflight >= self.deployment.max_concurrency

    def health(self) -> dict[str, Any]:
        """What operators see: breaker state, failures, load."""
        state = self.breaker.state
        if state is BreakerState.OPEN and self.breaker.retry_in() == 0:
            state = BreakerState.HALF_OPEN  # a probe would be let through now
        return {
            "name": self.deployment.name,
            "provider": self.deployment.provider,
            "priority": self.deployment.priority,
            "weight": self.deployment.weight,
            "state": state.value,
            "consecutive_failures": self.breaker.consecutive_failures,
            "retry_in": round(self.breaker.retry_in(), 3),
            "inflight": self.inflight,
            "calls": self.calls,
        }


class Router:
    """Orders a model's deployments for one request."""

    def __init__(self, table: dict[str, ModelEntry]) -> None:
        self._states = {
            d.name: DeploymentState(d) for entry in table.values() for d in entry.deployments
        }

    def states(self) -> list[DeploymentState]:
        """Every deployment's state."""
        return list(self._states.values())

    def state(self, deployment: Deployment) -> DeploymentState:
        """The live state of `deployment`."""
        return self._states[deployment.name]

    def plan(self, entry: ModelEntry) -> list[DeploymentState]:
        """Every deployment of `entry`, best first: by priority, then a weighted shuffle."""
        if len(entry.deployments) == 1:
            return [self._states[entry.deployments[0].name]]
        ordered: list[DeploymentState] = []
        by_priority = sorted(entry.deployments, key=lambda d: d.priority)
        for _, group in groupby(by_priority, key=lambda d: d.priority):
            # Weighted random order without replacement (Efraimidis-Spirakis keys).
            keyed = sorted(
                group,
                key=lambda d: random.random() ** (1.0 / d.weight),
                reverse=True,
            )
            ordered.extend(self._states[d.name] for d in keyed)
        return ordered

    def health(self, entry: ModelEntry) -> list[dict[str, Any]]:
        """The health of each of `entry`'s deployments."""
        return [self._states[d.name].health() for d in entry.deployments]
