"""The gateway app factory: resources born in the lifespan, routes and error handlers installed."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import ASGIApp

from switchyard.gateway.auth import KeyTable
from switchyard.gateway.collections import router as collections_router
from switchyard.gateway.config import GatewaySettings
from switchyard.gateway.errors import install_error_handlers
from switchyard.gateway.fastlane import FastLane
from switchyard.gateway.ingest import Ingestion
from switchyard.gateway.middleware import RequestContext
from switchyard.gateway.relay import Relay
from switchyard.gateway.routes import router
from switchyard.gateway.streams import StreamMux
from switchyard.runtime.broker import make_broker, nats_probe
from switchyard.runtime.health import HealthServer
from switchyard.runtime.lifecycle import freeze_startup_heap
from switchyard.runtime.metrics import serve_metrics

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings | None = None) -> ASGIApp:
    """Build the gateway application: the FastAPI app inside the request-context layer, which
    hands the hot routes to the fast lane."""
    settings = settings or GatewaySettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker = make_broker(settings.nats_url, "gateway", settings.shutdown_timeout)
        nc = await broker.connect()
        mux = StreamMux(nc)
        await mux.start()
        health = HealthServer(
            "gateway", settings.health_host, settings.health_port, [nats_probe(broker)]
        )
        await health.start()
        serve_metrics(settings.health_host, settings.metrics_port)
        app.state.relay = Relay(nc, mux, settings)
        app.state.ingestion = Ingestion(nc)
        app.state.keys = KeyTable(settings.key_table())
        app.state.limiter = settings.rate_limiter()
        if not settings.key_table():
            log.warning("no API keys configured: every request will be refused (401)")
        freeze_startup_heap()
        log.info("gateway ready", extra={"host": settings.host, "port": settings.port})
        try:
            yield
        finally:
            await health.stop()
            await mux.stop()
            await broker.stop()

    app = FastAPI(
        title="Switchyard",
        version="0.1.0",
        description="OpenAI-compatible gateway of Switchyard, a backend for LLM applications.",
        lifespan=lifespan,
        # Our middleware makes the one request span (honouring traceparent, setting x-trace-id);
        # FastAPI's own telemetry would add a second span and metrics to every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(collections_router)
    return RequestContext(app, settings.max_body_bytes, FastLane(app, settings.max_body_bytes))
