"""PostgreSQL access of the retrieval service. Every query is scoped to the tenant."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.contracts.retrieval import (
    Collection,
    CollectionCreate,
    Document,
    Filter,
    SearchHit,
)
from switchyard.retrieval.filters import SqlParams, compile_filter


async def _init_connection(conn: asyncpg.Connection) -> None:
    # pgvector values travel as text ('[1,2,3]'); jsonb as Python objects.
    await conn.set_type_codec("vector", encoder=str, decoder=str, schema="public", format="text")
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    """A pool whose connections know the vector and jsonb types."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, init=_init_connection)
    assert pool is not None
    return pool


def vector_literal(values: Sequence[float]) -> str:
    """pgvector's text form of a vector."""
    return "[" + ",".join(f"{v:.7g}" for v in values) + "]"


@dataclass(frozen=True)
class CollectionRow:
    """What queries need to know about a collection."""

    id: uuid.UUID
    tenant_id: str
    name: str
    embedding_model: str
    dimension: int


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to store."""

    position: int
    text: str
    section: str | None
    embedding: list[float]


_COLLECTION_COLUMNS = """
    c.id, c.name, c.embedding_model, c.dimension, c.metadata, c.created_at,
    (SELECT count(*) FROM retrieval.documents d WHERE d.collection_id = c.id) AS document_count,
    (SELECT count(*) FROM retrieval.chunks k WHERE k.collection_id = c.id) AS chunk_count
"""

_HIT_COLUMNS = "c.id, c.document_id, c.position, c.text, c.section, c.metadata"


def _collection(row: asyncpg.Record) -> Collection:
    return Collection(
        id=str(row["id"]),
        name=row["name"],
        embedding_model=row["embedding_model"],
        dimension=row["dimension"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        document_count=row["document_count"],
        chunk_count=row["chunk_count"],
    )


def _hit(row: asyncpg.Record, score: float) -> SearchHit:
    return SearchHit(
        chunk_id=str(row["id"]),
        document_id=str(row["document_id"]),
        external_id=row["external_id"],
        title=row["title"],
        source=row["source"],
        text=row["text"],
        section=row["section"],
        position=row["position"],
        score=score,
        metadata=row["metadata"],
    )


def _not_found(what: str) -> SwitchyardError:
    return SwitchyardError(ErrorCode.NOT_FOUND, f"{what} not found")


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class Store:
    """Collections, documents, chunks and the queries over them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # --- collections

    async def create_collection(
        self, tenant: str, create: CollectionCreate, model: str, dimension: int
    ) -> Collection:
        """Create a collection; its dimension gets an HNSW index if it has none yet."""
        async with self.pool.acquire() as conn, conn.transaction():
            # One partial HNSW index per dimension in use (dimension is an int from the model).
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS chunks_hnsw_{dimension} ON retrieval.chunks"
                f" USING hnsw ((embedding::vector({dimension})) vector_cosine_ops)"
                f" WHERE dimension = {dimension}"
            )
            try:
                await conn.execute(
                    "INSERT INTO retrieval.collections"
                    " (id, tenant_id, name, embedding_model, dimension, metadata)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    uuid.uuid4(),
                    tenant,
                    create.name,
                    model,
                    dimension,
                    create.metadata,
                )
            except asyncpg.UniqueViolationError:
                raise SwitchyardError(
                    ErrorCode.CONFLICT, f"a collection named {create.name!r} already exists"
                ) from None
        return await self.describe(tenant, create.name)

    async def collection(self, tenant: str, ref: str) -> CollectionRow:
        """The tenant's collection with this id or name (404 for anybody else's)."""
        row = await self.pool.fetchrow(
            "SELECT id, tenant_id, name, embedding_model, dimension FROM retrieval.collections"
            " WHERE tenant_id = $1 AND (id = $2 OR name = $3)",
            tenant,
            _uuid(ref),
            ref,
        )
        if row is None:
            raise _not_found(f"collection {ref!r}")
        return CollectionRow(**dict(row))

    async def describe(self, tenant: str, ref: str) -> Collection:
        """A collection with its counts."""
        found = await self.collection(tenant, ref)
        row = await self.pool.fetchrow(
            f"SELECT {_COLLECTION_COLUMNS} FROM retrieval.collections c WHERE c.id = $1", found.id
        )
        assert row is not None
        return _collection(row)

    async def list_collections(self, tenant: str) -> list[Collection]:
        """The tenant's collections."""
        rows = await self.pool.fetch(
            f"SELECT {_COLLECTION_COLUMNS} FROM retrieval.collections c"
            " WHERE c.tenant_id = $1 ORDER BY c.created_at",
            tenant,
        )
        return [_collection(row) for row in rows]

    async def delete_collection(self, tenant: str, ref: str) -> Collection:
        """Delete a collection with its documents and chunks."""
        described = await self.describe(tenant, ref)
        await self.pool.execute(
            "DELETE FROM retrieval.collections WHERE id = $1 AND tenant_id = $2",
            uuid.UUID(described.id),
            tenant,
        )
        return described

    # --- documents

    async def content_hash(self, collection: CollectionRow, external_id: str) -> str | None:
        """The stored content hash of a document, if it exists."""
        value: str | None = await self.pool.fetchval(
            "SELECT content_hash FROM retrieval.documents"
            " WHERE collection_id = $1 AND tenant_id = $2 AND external_id = $3",
            collection.id,
            collection.tenant_id,
            external_id,
        )
        return value

    async def replace_document(
        self,
        collection: CollectionRow,
        external_id: str,
        title: str | None,
        source: str | None,
        metadata: dict[str, Any],
        content_hash: str,
        chunks: list[NewChunk],
    ) -> tuple[str, str]:
        """Insert or replace a document and all its chunks atomically.

        Returns the document id and what happened: `created`, `updated` or `unchanged`.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"{collection.id}/{external_id}"
            )
            row = await conn.fetchrow(
                "SELECT id, content_hash FROM retrieval.documents"
                " WHERE collection_id = $1 AND external_id = $2",
                collection.id,
                external_id,
            )
            if row is not None and row["content_hash"] == content_hash:
                return str(row["id"]), "unchanged"
            if row is None:
                document_id = uuid.uuid4()
                status = "created"
                await conn.execute(
                    "INSERT INTO retrieval.documents (id, collection_id, tenant_id, external_id,"
                    " title, source, metadata, content_hash, chunk_count)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    document_id,
                    collection.id,
                    collection.tenant_id,
                    external_id,
                    title,
                    source,
                    metadata,
                    content_hash,
                    len(chunks),
                )
            else:
                document_id = row["id"]
                status = "updated"
                await conn.execute(
                    "UPDATE retrieval.documents SET title = $2, source = $3, metadata = $4,"
                    " content_hash = $5, chunk_count = $6, updated_at = now() WHERE id = $1",
                    document_id,
                    title,
                    source,
                    metadata,
                    content_hash,
                    len(chunks),
                )
                await conn.execute(
                    "DELETE FROM retrieval.chunks WHERE document_id = $1", document_id
                )
            await conn.executemany(
                "INSERT INTO retrieval.chunks (id, document_id, collection_id, tenant_id,"
                " position, text, section, metadata, dimension, embedding) VALUES"
                f" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::vector({collection.dimension}))",
                [
                    (
                        uuid.uuid4(),
                        document_id,
                        collection.id,
                        collection.tenant_id,
                        chunk.position,
                        chunk.text,
                        chunk.section,
                        {**metadata, **({"section": chunk.section} if chunk.section else {})},
                        collection.dimension,
                        vector_literal(chunk.embedding),
                    )
                    for chunk in chunks
                ],
            )
        return str(document_id), status

    async def list_documents(
        self, collection: CollectionRow, limit: int, offset: int
    ) -> list[Document]:
        """A page of the collection's documents."""
        rows = await self.pool.fetch(
            "SELECT id, external_id, title, source, metadata, content_hash, chunk_count,"
            " created_at, updated_at FROM retrieval.documents"
            " WHERE collection_id = $1 AND tenant_id = $2"
            " ORDER BY created_at, external_id LIMIT $3 OFFSET $4",
            collection.id,
            collection.tenant_id,
            limit,
            offset,
        )
        return [Document(**{**dict(row), "id": str(row["id"])}) for row in rows]

    async def delete_document(self, collection: CollectionRow, document: str) -> Document:
        """Delete a document (by id or external id) and its chunks."""
        row = await self.pool.fetchrow(
            "DELETE FROM retrieval.documents WHERE collection_id = $1 AND tenant_id = $2"
            " AND (id = $3 OR external_id = $4)"
            " RETURNING id, external_id, title, source, metadata, content_hash, chunk_count,"
            " created_at, updated_at",
            collection.id,
            collection.tenant_id,
            _uuid(document),
            document,
        )
        if row is None:
            raise _not_found(f"document {document!r}")
        return Document(**{**dict(row), "id": str(row["id"])})

    # --- search

    def _scope(self, collection: CollectionRow, filters: Filter | None, params: SqlParams) -> str:
        where = (
            f"c.dimension = {collection.dimension}"
            f" AND c.collection_id = {params.add(collection.id)}"
            f" AND c.tenant_id = {params.add(collection.tenant_id)}"
        )
        if filters is not None:
            where += " AND " + compile_filter(filters, params)
        return where

    async def candidates(
        self, collection: CollectionRow, filters: Filter | None, limit: int
    ) -> int:
        """How many chunks pass the scope and filters, counted up to `limit`."""
        if filters is None:
            # Without filters the documents' chunk counts answer at once; counting chunk rows
            # made the planner scan the table (5.6 ms at 100k chunks, measured).
            total: int = await self.pool.fetchval(
                "SELECT coalesce(sum(chunk_count), 0) FROM retrieval.documents"
                " WHERE collection_id = $1 AND tenant_id = $2",
                collection.id,
                collection.tenant_id,
            )
            return min(total, limit)
        params = SqlParams()
        where = self._scope(collection, filters, params)
        count: int = await self.pool.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM retrieval.chunks c WHERE {where}"
            f" LIMIT {params.add(limit)}) s",
            *params.values,
        )
        return count

    async def vector_search(
        self,
        collection: CollectionRow,
        query: list[float],
        top_k: int,
        filters: Filter | None,
        *,
        exact: bool,
        ef_search: int,
    ) -> list[SearchHit]:
        """Nearest chunks by cosine distance: exact (scan the filtered rows) or HNSW."""
        d = collection.dimension
        params = SqlParams(vector_literal(query))
        where = self._scope(collection, filters, params)
        sql = (
            "SELECT h.*, doc.external_id, doc.title, doc.source FROM ("
            f" SELECT {_HIT_COLUMNS}, c.embedding::vector({d}) <=> $1::vector({d}) AS distance"
            f" FROM retrieval.chunks c WHERE {where}"
            f" ORDER BY c.embedding::vector({d}) <=> $1::vector({d}) LIMIT {params.add(top_k)}"
            ") h JOIN retrieval.documents doc ON doc.id = h.document_id ORDER BY h.distance"
        )
        async with self.pool.acquire() as conn, conn.transaction():
            # Both strategies send this same statement; a cached generic plan would ignore the
            # settings below and run one strategy's plan for the other (measured: "exact" calls
            # returning a third of top_k after five runs on a connection).
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            if exact:
                await conn.execute("SET LOCAL enable_indexscan = off")
            else:
                await conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
                await conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
            rows = await conn.fetch(sql, *params.values)
        return [_hit(row, 1.0 - float(row["distance"])) for row in rows]

    async def fulltext_search(
        self, collection: CollectionRow, query: str, top_k: int, filters: Filter | None
    ) -> list[SearchHit]:
        """Chunks matching `websearch_to_tsquery`, ranked by `ts_rank_cd`."""
        params = SqlParams(query)
        where = self._scope(collection, filters, params)
        sql = (
            "SELECT h.*, doc.external_id, doc.title, doc.source FROM ("
            f" SELECT {_HIT_COLUMNS}, ts_rank_cd(c.tsv, q) AS rank"
            " FROM retrieval.chunks c, websearch_to_tsquery('english', $1) q"
            f" WHERE c.tsv @@ q AND {where}"
            f" ORDER BY rank DESC LIMIT {params.add(top_k)}"
            ") h JOIN retrieval.documents doc ON doc.id = h.document_id ORDER BY h.rank DESC"
        )
        rows = await self.pool.fetch(sql, *params.values)
        return [_hit(row, float(row["rank"])) for row in rows]
