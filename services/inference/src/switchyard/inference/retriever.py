"""The retrieval step of the chat lifecycle: search the requested collections over NATS."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from switchyard.contracts import ChatRequestMessage, subjects
from switchyard.contracts.retrieval import (
    RagOptions,
    SearchHit,
    SearchQuery,
    SearchReply,
    SearchRequestMessage,
)
from switchyard.runtime.rpc import call


class Retriever:
    """Searches each collection of a RAG request at once, within a time bound."""

    def __init__(self, nc: Client, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    async def search(
        self, message: ChatRequestMessage, rag: RagOptions, query: str
    ) -> list[tuple[str, SearchHit]]:
        """The best `top_k` hits over all collections, with the collection each came from."""
        if not query.strip():
            return []
        timeout = max(0.05, min(self._timeout, message.remaining()))
        results = await asyncio.gather(
            *(self._one(message, rag, query, collection, timeout) for collection in rag.collections)
        )
        hits = [
            (c, hit) for c, found in zip(rag.collections, results, strict=True) for hit in found
        ]
        hits.sort(key=lambda pair: pair[1].score, reverse=True)
        return hits[: rag.top_k]

    async def _one(
        self,
        message: ChatRequestMessage,
        rag: RagOptions,
        query: str,
        collection: str,
        timeout: float,
    ) -> list[SearchHit]:
        request = SearchRequestMessage(
            **message.header(),
            collection=collection,
            search=SearchQuery(
                query=query[:4000], top_k=rag.top_k, mode=rag.mode, filters=rag.filters
            ),
        )
        reply = await call(
            self._nc, subjects.RETRIEVAL_SEARCH, request, SearchReply, timeout, "retrieval"
        )
        return reply.hits
