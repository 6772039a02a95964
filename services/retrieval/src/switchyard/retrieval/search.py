"""Search: vector (exact or HNSW, chosen so selective filters still fill `top_k`), full-text,
and hybrid by weighted reciprocal rank fusion."""

from __future__ import annotations

from switchyard.contracts.retrieval import SearchHit, SearchQuery
from switchyard.retrieval.embedder import Embedder
from switchyard.retrieval.store import CollectionRow, Store

RRF_K = 60  # the usual constant of reciprocal rank fusion


def fuse(ranked: list[tuple[float, list[SearchHit]]], top_k: int) -> list[SearchHit]:
    """Weighted reciprocal rank fusion: score = Σ weight / (RRF_K + rank)."""
    scores: dict[str, float] = {}
    hits: dict[str, SearchHit] = {}
    for weight, results in ranked:
        for rank, hit in enumerate(results, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (RRF_K + rank)
            hits.setdefault(hit.chunk_id, hit)
    best = sorted(scores, key=lambda chunk_id: scores[chunk_id], reverse=True)[:top_k]
    return [hits[chunk_id].model_copy(update={"score": scores[chunk_id]}) for chunk_id in best]


class Searcher:
    """Runs a `SearchQuery` against one collection."""

    def __init__(
        self, store: Store, embedder: Embedder, exact_threshold: int, default_ef: int
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._exact_threshold = exact_threshold
        self._default_ef = default_ef

    async def search(
        self, collection: CollectionRow, query: SearchQuery, request_id: str
    ) -> tuple[list[SearchHit], str | None]:
        """The hits, best first, and how the vector part ran."""
        if query.mode == "fulltext":
            hits = await self._store.fulltext_search(
                collection, query.query, query.top_k, query.filters
            )
            return hits, None
        depth = query.top_k if query.mode == "vector" else max(4 * query.top_k, 20)
        vector_hits, strategy = await self._vector(collection, query, depth, request_id)
        if query.mode == "vector":
            return vector_hits, strategy
        text_hits = await self._store.fulltext_search(collection, query.query, depth, query.filters)
        fused = fuse(
            [(query.weights.vector, vector_hits), (query.weights.fulltext, text_hits)], query.top_k
        )
        return fused, strategy

    async def _vector(
        self, collection: CollectionRow, query: SearchQuery, depth: int, request_id: str
    ) -> tuple[list[SearchHit], str]:
        (vector,), _ = await self._embedder.embed(
            [query.query], collection.embedding_model, collection.tenant_id, request_id
        )
        # pgvector 0.6 filters after the HNSW scan, so a selective filter (or a small collection
        # sharing the index) can leave fewer than top_k rows. When few rows qualify, scan them
        # exactly; otherwise use HNSW, widening ef_search until top_k rows survive the filters.
        count = await self._store.candidates(collection, query.filters, self._exact_threshold + 1)
        if count <= self._exact_threshold:
            hits = await self._store.vector_search(
                collection, vector, depth, query.filters, exact=True, ef_search=0
            )
            return hits, f"exact({count})"
        ef = max(query.ef_search or self._default_ef, depth)
        while True:
            hits = await self._store.vector_search(
                collection, vector, depth, query.filters, exact=False, ef_search=ef
            )
            if len(hits) >= depth or ef >= 1000:
                break
            ef = min(1000, ef * 4)
        if len(hits) < depth:
            hits = await self._store.vector_search(
                collection, vector, depth, query.filters, exact=True, ef_search=0
            )
            return hits, f"exact-after-hnsw(ef={ef})"
        return hits, f"hnsw(ef={ef})"
