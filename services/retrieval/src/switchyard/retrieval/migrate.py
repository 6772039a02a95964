"""Versioned schema migrations, applied at start-up: `migrations/NNNN_name.sql`, in order, each
once, each in its own transaction, under an advisory lock so replicas never race."""

from __future__ import annotations

import importlib.resources
import logging

import asyncpg

log = logging.getLogger(__name__)

_LOCK_KEY = 0x5357_5245  # "SWRE": one advisory lock for the retrieval schema


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    folder = importlib.resources.files("switchyard.retrieval") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply the migrations not applied yet; returns their names."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                "CREATE SCHEMA IF NOT EXISTS retrieval;"
                "CREATE TABLE IF NOT EXISTS retrieval.schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                r["version"]
                for r in await conn.fetch("SELECT version FROM retrieval.schema_migrations")
            }
            for version, name, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO retrieval.schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied
