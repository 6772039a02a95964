"""Thin NATS handlers: validate, call the store or searcher, reply with data or an error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from pydantic import BaseModel, ValidationError

from switchyard.contracts import ErrorBody, ErrorCode, SwitchyardError, subjects
from switchyard.contracts.retrieval import (
    CollectionsReply,
    CollectionsRequest,
    DocumentsReply,
    DocumentsRequest,
    SearchReply,
    SearchRequestMessage,
)
from switchyard.retrieval.embedder import Embedder
from switchyard.retrieval.search import Searcher
from switchyard.retrieval.store import Store

log = logging.getLogger(__name__)
Request = TypeVar("Request", bound=BaseModel)
Reply = TypeVar("Reply", CollectionsReply, DocumentsReply, SearchReply)


async def _answer(
    raw: bytes,
    kind: type[Request],
    reply: type[Reply],
    work: Callable[[Request], Awaitable[Reply]],
) -> Reply:
    try:
        request = kind.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return reply(error=ErrorBody.of(ErrorCode.INVALID_REQUEST, f"{where}: {first['msg']}"))
    try:
        return await work(request)
    except SwitchyardError as exc:
        return reply(error=exc.body)
    except Exception:
        log.exception("%s failed", kind.__name__)
        return reply(error=ErrorBody.of(ErrorCode.INTERNAL_ERROR, "internal error in retrieval"))


def register(broker: NatsBroker, store: Store, searcher: Searcher, embedder: Embedder) -> None:
    """Subscribe the request/reply handlers in the queue group `retrieval`."""

    async def collections(req: CollectionsRequest) -> CollectionsReply:
        if req.op == "list":
            return CollectionsReply(collections=await store.list_collections(req.tenant_id))
        if req.op == "create":
            if req.create is None:
                raise SwitchyardError(ErrorCode.INVALID_REQUEST, "create needs a body")
            # The dimension (and the model's real name) come from embedding a probe text.
            (vector,), model = await embedder.embed(
                ["dimension probe"], req.create.embedding_model, req.tenant_id, req.request_id
            )
            created = await store.create_collection(req.tenant_id, req.create, model, len(vector))
            return CollectionsReply(collections=[created])
        if req.collection is None:
            raise SwitchyardError(ErrorCode.INVALID_REQUEST, f"{req.op} needs a collection")
        if req.op == "get":
            return CollectionsReply(
                collections=[await store.describe(req.tenant_id, req.collection)]
            )
        deleted = await store.delete_collection(req.tenant_id, req.collection)
        return CollectionsReply(collections=[deleted])

    async def documents(req: DocumentsRequest) -> DocumentsReply:
        collection = await store.collection(req.tenant_id, req.collection)
        if req.op == "list":
            return DocumentsReply(
                documents=await store.list_documents(collection, req.limit, req.offset)
            )
        if req.document_id is None:
            raise SwitchyardError(ErrorCode.INVALID_REQUEST, "delete needs a document_id")
        return DocumentsReply(documents=[await store.delete_document(collection, req.document_id)])

    async def search(req: SearchRequestMessage) -> SearchReply:
        collection = await store.collection(req.tenant_id, req.collection)
        hits, strategy = await searcher.search(collection, req.search, req.request_id)
        return SearchReply(hits=hits, strategy=strategy)

    @broker.subscriber(subjects.RETRIEVAL_COLLECTIONS, queue=subjects.QUEUE_RETRIEVAL)
    async def on_collections(msg: NatsMessage) -> CollectionsReply:
        return await _answer(msg.body, CollectionsRequest, CollectionsReply, collections)

    @broker.subscriber(subjects.RETRIEVAL_DOCUMENTS, queue=subjects.QUEUE_RETRIEVAL)
    async def on_documents(msg: NatsMessage) -> DocumentsReply:
        return await _answer(msg.body, DocumentsRequest, DocumentsReply, documents)

    @broker.subscriber(subjects.RETRIEVAL_SEARCH, queue=subjects.QUEUE_RETRIEVAL, max_workers=8)
    async def on_search(msg: NatsMessage) -> SearchReply:
        return await _answer(msg.body, SearchRequestMessage, SearchReply, search)
