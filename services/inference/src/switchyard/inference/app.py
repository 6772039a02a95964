"""The inference service: resources born in one lifespan, handlers registered, health served."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from faststream.nats import NatsBroker
from prometheus_client import REGISTRY

from switchyard.inference.cache import ResponseCache
from switchyard.inference.config import InferenceSettings
from switchyard.inference.embeddings.handlers import register_embeddings
from switchyard.inference.embeddings.service import Embeddings
from switchyard.inference.generation import Generations, ModelTable
from switchyard.inference.handlers import GenerationHandlers, register
from switchyard.inference.metrics import DeploymentCollector
from switchyard.inference.providers.anthropic import AnthropicProvider
from switchyard.inference.providers.base import Provider
from switchyard.inference.providers.openai import OpenAIProvider
from switchyard.inference.retriever import Retriever
from switchyard.inference.routing import Router
from switchyard.runtime.broker import make_broker, nats_client, nats_probe
from switchyard.runtime.health import HealthServer
from switchyard.runtime.hotpath import HotPath
from switchyard.runtime.lifecycle import freeze_startup_heap
from switchyard.runtime.metrics import serve_metrics

log = logging.getLogger(__name__)


@dataclass
class Inference:
    """The running service's resources."""

    settings: InferenceSettings
    broker: NatsBroker
    generations: Generations
    health: HealthServer


async def _providers(
    settings: InferenceSettings, table: ModelTable, names: set[str]
) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    if "openai" in names:
        providers["openai"] = OpenAIProvider()
    if "anthropic" in names:
        providers["anthropic"] = AnthropicProvider()
    if "local" in names:
        from switchyard.inference.providers.local import LocalProvider, smollm2_path

        local = LocalProvider(
            smollm2_path(),
            threads=settings.local_threads,
            workers=settings.local_workers,
            queue=settings.local_queue,
            context=settings.local_context,
        )
        await local.load()
        providers["local"] = local
    return providers


@contextlib.asynccontextmanager
async def lifespan(settings: InferenceSettings) -> AsyncIterator[Inference]:
    """Connect, load models, subscribe, serve health; on exit drain and release everything."""
    entries = settings.model_table()
    table = ModelTable(entries, settings.default_model)
    providers = await _providers(
        settings,
        table,
        {d.provider for e in entries.values() if e.kind == "chat" for d in e.deployments},
    )
    embeddings = await Embeddings.load(settings, entries)
    broker = make_broker(settings.nats_url, "inference", settings.shutdown_timeout)
    health = HealthServer(
        "inference", settings.health_host, settings.health_port, [nats_probe(broker)]
    )
    try:
        await broker.connect()
        nc = nats_client(broker)
        HotPath.attach(nc)  # before any subscription (the request subjects and reply streams)
        cache = (
            await ResponseCache.open(nc, settings.cache_bucket, settings.cache_ttl)
            if settings.cache_enabled
            else None
        )
        router = Router(entries)
        REGISTRY.register(DeploymentCollector(router))
        serve_metrics(settings.health_host, settings.metrics_port)
        generations = Generations(
            nc,
            table,
            providers,
            router,
            settings.max_inflight,
            cache,
            Retriever(nc, settings.rag_timeout),
        )
        register(broker, generations)
        register_embeddings(broker, embeddings)
        await broker.start()
        hot_path = GenerationHandlers(nc, generations)
        await hot_path.subscribe()
        await health.start()
        freeze_startup_heap()
        log.info("inference ready", extra={"models": sorted(entries), "health_port": health.port})
        yield Inference(settings, broker, generations, health)
        await hot_path.stop_taking_requests()
        await generations.drain(settings.shutdown_timeout)
        await hot_path.unsubscribe()
        await embeddings.drain(settings.shutdown_timeout)
    finally:
        await health.stop()
        await broker.stop()
        for provider in providers.values():
            await provider.aclose()
        await embeddings.aclose()


async def serve(stop: asyncio.Event, settings: InferenceSettings | None = None) -> None:
    """Run until `stop` is set (SIGTERM/SIGINT)."""
    async with lifespan(settings or InferenceSettings()):
        await stop.wait()
