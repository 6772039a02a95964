"""A service skeleton: NATS connected, health served, handlers registered, drained on stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from faststream.nats import NatsBroker

from switchyard.runtime.broker import make_broker, nats_probe
from switchyard.runtime.health import HealthServer, Probe
from switchyard.runtime.metrics import serve_metrics
from switchyard.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


async def serve_broker(
    name: str,
    settings: ServiceSettings,
    stop: asyncio.Event,
    register: Callable[[NatsBroker], None] | None = None,
    probes: list[Probe] | None = None,
) -> None:
    """Connect, register handlers, serve health (NATS + `probes`) until `stop`, then drain."""
    broker = make_broker(settings.nats_url, name, settings.shutdown_timeout)
    if register is not None:
        register(broker)
    health = HealthServer(
        name, settings.health_host, settings.health_port, [nats_probe(broker), *(probes or [])]
    )
    try:
        await broker.start()
        await health.start()
        serve_metrics(settings.health_host, settings.metrics_port)
        log.info("%s ready", name, extra={"health_port": health.port})
        await stop.wait()
    finally:
        await health.stop()
        await broker.stop()
