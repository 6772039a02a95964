"""Inference metrics: generations and upstream attempts by outcome, deployment health gauges."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switchyard.inference.resilience import BreakerState
from switchyard.inference.routing import Router

GENERATIONS = Counter(
    "switchyard_generations_total", "Generations by model and outcome.", ["model", "outcome"]
)
UPSTREAM_ATTEMPTS = Counter(
    "switchyard_upstream_attempts_total",
    "Calls to a deployment by outcome (ok or the error code).",
    ["deployment", "outcome"],
)


class Counted:
    """Counts into a labelled counter, each label combination's child looked up once
    (prometheus' `labels()` checks its arguments and takes a lock on every call)."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[tuple[str, ...], Counter] = {}

    def inc(self, *labels: str) -> None:
        """Add one to the series of `labels`."""
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._counter.labels(*labels)
        child.inc()


COUNT_GENERATIONS = Counted(GENERATIONS)
COUNT_UPSTREAM_ATTEMPTS = Counted(UPSTREAM_ATTEMPTS)
_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class DeploymentCollector(Collector):
    """Reads breaker state and load from the router at scrape time (nothing on the hot path)."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[Metric]:
        """The gauges, one sample per deployment."""
        state = GaugeMetricFamily(
            "switchyard_deployment_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            labels=["deployment"],
        )
        inflight = GaugeMetricFamily(
            "switchyard_deployment_inflight", "Requests in flight.", labels=["deployment"]
        )
        for deployment in self._router.states():
            state.add_metric([deployment.deployment.name], _STATE_VALUE[deployment.breaker.state])
            inflight.add_metric([deployment.deployment.name], deployment.inflight)
        yield state
        yield inflight
