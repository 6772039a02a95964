"""The retrieval step of the chat lifecycle: search the requested collections over NATS."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from switchyard.contracts import ChatRequestMessage, ErrorCode, SwitchyardError, subjects
from switchyard.contracts.retrieval import (
    RagOptions,
    SearchHit,
    SearchQuery,
    SearchReply,
    SearchRequestMessage,
)


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
        try:
            msg = await self._nc.request(
                subjects.RETRIEVAL_SEARCH, request.model_dump_json().encode(), timeout=timeout
            )
        except NoRespondersError as exc:
            raise SwitchyardError(
                ErrorCode.SERVICE_UNAVAILABLE, "retrieval is not running"
            ) from exc
        except NatsTimeoutError as exc:
            raise SwitchyardError(ErrorCode.DEADLINE_EXCEEDED, "retrieval missed its time") from exc
        reply = SearchReply.model_validate_json(msg.data)
        if reply.error is not None:
            raise SwitchyardError(reply.error.code, reply.error.message)
        return reply.hits
