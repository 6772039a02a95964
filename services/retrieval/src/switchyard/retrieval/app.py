"""The retrieval service. Until ingestion and search land it holds its database pool and
serves health, reporting SERVING only while both NATS and PostgreSQL answer."""

from __future__ import annotations

import asyncio

import asyncpg

from switchyard.retrieval.config import RetrievalSettings
from switchyard.runtime.service import serve_broker


async def serve(stop: asyncio.Event, settings: RetrievalSettings) -> None:
    """Run until `stop` is set."""
    pool = await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=1, max_size=settings.pool_size
    )

    async def database_up() -> bool:
        value: int = await pool.fetchval("SELECT 1", timeout=1)
        return value == 1

    try:
        await serve_broker("retrieval", settings, stop, probes=[database_up])
    finally:
        await pool.close()
