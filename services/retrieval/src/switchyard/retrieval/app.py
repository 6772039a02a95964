"""The retrieval service: schema migrated, handlers and the ingestion worker running, health
SERVING only while both NATS and PostgreSQL answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from switchyard.retrieval.config import RetrievalSettings
from switchyard.retrieval.embedder import Embedder
from switchyard.retrieval.handlers import register
from switchyard.retrieval.ingestion import IngestWorker
from switchyard.retrieval.migrate import migrate
from switchyard.retrieval.search import Searcher
from switchyard.retrieval.store import Store, create_pool
from switchyard.runtime.broker import make_broker, nats_client
from switchyard.runtime.jetstream import ensure_stream, ingest_stream_config
from switchyard.runtime.service import service_runtime

log = logging.getLogger(__name__)


async def serve(stop: asyncio.Event, settings: RetrievalSettings) -> None:
    """Run until `stop` is set."""
    pool = await create_pool(settings.database_url.get_secret_value(), settings.pool_size)
    applied = await migrate(pool)
    if applied:
        log.info("schema migrated", extra={"applied": applied})

    async def database_up() -> bool:
        value: int = await pool.fetchval("SELECT 1", timeout=1)
        return value == 1

    broker = make_broker(settings.nats_url, "retrieval", settings.shutdown_timeout)
    embedder = Embedder(lambda: nats_client(broker), settings.embed_batch, settings.embed_timeout)
    store = Store(pool)
    searcher = Searcher(
        store, embedder, settings.exact_search_threshold, settings.default_ef_search
    )
    worker_stop = asyncio.Event()
    try:
        register(broker, store, searcher, embedder)
        async with service_runtime("retrieval", settings, broker, probes=[database_up]):
            await ensure_stream(nats_client(broker).jetstream(), ingest_stream_config())
            worker = IngestWorker(lambda: nats_client(broker), store, embedder, settings)
            task = asyncio.create_task(worker.run(worker_stop), name="ingest-worker")
            await stop.wait()
            worker_stop.set()  # finish the current job within the drain bound, else leave it
            done, _ = await asyncio.wait({task}, timeout=settings.shutdown_timeout)
            if not done:
                task.cancel()  # unacknowledged: JetStream redelivers it
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await pool.close()
