"""A service skeleton: NATS connected, health served, handlers registered, drained on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from faststream.nats import NatsBroker

from switchyard.runtime.broker import make_broker, nats_probe
from switchyard.runtime.health import HealthServer, Probe
from switchyard.runtime.metrics import serve_metrics
from switchyard.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def service_runtime(
    name: str,
    settings: ServiceSettings,
    broker: NatsBroker,
    probes: list[Probe] | None = None,
) -> AsyncIterator[NatsBroker]:
    """Start `broker` (handlers already registered), serve health (NATS + `probes`) and
    metrics; stop them on exit."""
    health = HealthServer(
        name, settings.health_host, settings.health_port, [nats_probe(broker), *(probes or [])]
    )
    try:
        await broker.start()
        await health.start()
        serve_metrics(settings.health_host, settings.metrics_port)
        log.info("%s ready", name, extra={"health_port": health.port})
        yield broker
    finally:
        await health.stop()
        await broker.stop()


async def serve_broker(
    name: str,
    settings: ServiceSettings,
    stop: asyncio.Event,
    register: Callable[[NatsBroker], None] | None = None,
    probes: list[Probe] | None = None,
) -> None:
    """Run a service made of NATS handlers only, until `stop`."""
    broker = make_broker(settings.nats_url, name, settings.shutdown_timeout)
    if register is not None:
        register(broker)
    async with service_runtime(name, settings, broker, probes):
        await stop.wait()
