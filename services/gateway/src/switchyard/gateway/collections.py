"""Collections, documents, ingestion jobs and search: thin routes over retrieval's subjects."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from switchyard.contracts import ErrorCode, SwitchyardError, deadline_in, subjects
from switchyard.contracts.retrieval import (
    CollectionCreate,
    CollectionsReply,
    CollectionsRequest,
    ContentType,
    DocumentsReply,
    DocumentsRequest,
    IngestRequest,
    SearchQuery,
    SearchReply,
    SearchRequestMessage,
)
from switchyard.gateway.auth import Tenant
from switchyard.gateway.http import JsonResponse
from switchyard.gateway.ingest import Ingestion, Upload
from switchyard.gateway.relay import Relay
from switchyard.gateway.routes import RelayDep

router = APIRouter(tags=["retrieval"])

_EXTENSIONS: dict[str, ContentType] = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


async def get_ingestion(request: Request) -> Ingestion:
    """The ingestion submitter born in the app's lifespan."""
    ingestion: Ingestion = request.app.state.ingestion
    return ingestion


IngestionDep = Annotated[Ingestion, Depends(get_ingestion)]


async def _collections(
    relay: Relay, request: Request, tenant: str, op: str, **fields: Any
) -> CollectionsReply:
    timeout = relay.settings.retrieval_timeout
    message = CollectionsRequest(
        request_id=request.state.request_id,
        tenant_id=tenant,
        deadline=deadline_in(timeout),
        op=op,  # type: ignore[arg-type]
        **fields,
    )
    return await relay.call(subjects.RETRIEVAL_COLLECTIONS, message, CollectionsReply, timeout)


async def _documents(
    relay: Relay, request: Request, tenant: str, op: str, collection: str, **fields: Any
) -> DocumentsReply:
    timeout = relay.settings.retrieval_timeout
    message = DocumentsRequest(
        request_id=request.state.request_id,
        tenant_id=tenant,
        deadline=deadline_in(timeout),
        op=op,  # type: ignore[arg-type]
        collection=collection,
        **fields,
    )
    return await relay.call(subjects.RETRIEVAL_DOCUMENTS, message, DocumentsReply, timeout)


def _dump(items: list[Any]) -> dict[str, Any]:
    return {"object": "list", "data": [item.model_dump(mode="json") for item in items]}


@router.post("/v1/collections", status_code=201, summary="Create a collection")
async def create_collection(
    body: CollectionCreate, request: Request, tenant: Tenant, relay: RelayDep
) -> JsonResponse:
    """Create a collection; its embedding model and dimension are fixed from now on."""
    reply = await _collections(relay, request, tenant, "create", create=body)
    return JsonResponse(reply.collections[0].model_dump(mode="json"), status_code=201)


@router.get("/v1/collections", summary="List collections")
async def list_collections(request: Request, tenant: Tenant, relay: RelayDep) -> dict[str, Any]:
    """The tenant's collections."""
    return _dump((await _collections(relay, request, tenant, "list")).collections)


@router.get("/v1/collections/{collection}", summary="Get a collection")
async def get_collection(
    collection: str, request: Request, tenant: Tenant, relay: RelayDep
) -> dict[str, Any]:
    """A collection (by id or name) with its document and chunk counts."""
    reply = await _collections(relay, request, tenant, "get", collection=collection)
    return reply.collections[0].model_dump(mode="json")


@router.delete("/v1/collections/{collection}", summary="Delete a collection")
async def delete_collection(
    collection: str, request: Request, tenant: Tenant, relay: RelayDep
) -> dict[str, Any]:
    """Delete a collection with all its documents and chunks."""
    reply = await _collections(relay, request, tenant, "delete", collection=collection)
    return {"id": reply.collections[0].id, "object": "collection", "deleted": True}


def _content_type(declared: str | None, filename: str | None) -> ContentType:
    kind = (declared or "").split(";", 1)[0].strip().lower()
    if kind in get_args(ContentType):
        return kind  # type: ignore[return-value]
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    raise SwitchyardError(
        ErrorCode.INVALID_REQUEST,
        f"unsupported document type {kind or suffix or 'unknown'!r}: use text, Markdown, HTML, PDF",
        param="file",
    )


async def _uploads(request: Request) -> list[Upload]:
    """Documents from a JSON body or a multipart form (`file` parts, optional fields)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        files = [f for f in form.getlist("file") if not isinstance(f, str)]
        if not files:
            raise SwitchyardError(ErrorCode.INVALID_REQUEST, "no 'file' part", param="file")
        raw_meta = form.get("metadata")
        try:
            metadata = json.loads(raw_meta) if isinstance(raw_meta, str) and raw_meta else {}
        except json.JSONDecodeError:
            metadata = None
        if not isinstance(metadata, dict):
            raise SwitchyardError(
                ErrorCode.INVALID_REQUEST, "metadata must be a JSON object", param="metadata"
            )
        external_id, title = form.get("external_id"), form.get("title")
        return [
            Upload(
                content=await f.read(),
                content_type=_content_type(f.content_type, f.filename),
                external_id=(
                    external_id if isinstance(external_id, str) and len(files) == 1 else None
                )
                or f.filename,
                title=title if isinstance(title, str) and len(files) == 1 else None,
                source=f.filename,
                metadata=metadata,
            )
            for f in files
        ]
    try:
        body = IngestRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise SwitchyardError(
            ErrorCode.INVALID_REQUEST, f"{param}: {first['msg']}", param=param
        ) from None
    return [
        Upload(
            content=doc.text.encode(),
            content_type=doc.content_type,
            external_id=doc.external_id,
            title=doc.title,
            source=doc.source,
            metadata=doc.metadata,
        )
        for doc in body.documents
    ]


@router.post(
    "/v1/collections/{collection}/documents",
    status_code=202,
    summary="Ingest documents",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": IngestRequest.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                            "external_id": {"type": "string"},
                            "title": {"type": "string"},
                            "metadata": {"type": "string", "description": "a JSON object"},
                        },
                        "required": ["file"],
                    }
                },
            }
        }
    },
)
async def ingest(
    collection: str,
    request: Request,
    tenant: Tenant,
    relay: RelayDep,
    ingestion: IngestionDep,
) -> JsonResponse:
    """Queue documents for ingestion (JSON text or multipart upload): 202 with a job to poll.
    An `Idempotency-Key` header makes a retried submission return the same job."""
    uploads = await _uploads(request)
    found = await _collections(relay, request, tenant, "get", collection=collection)
    job = await ingestion.submit(
        tenant,
        found.collections[0].id,
        uploads,
        request.state.request_id,
        request.headers.get("idempotency-key"),
    )
    return JsonResponse(job.model_dump(mode="json"), status_code=202)


@router.get("/v1/collections/{collection}/documents", summary="List documents")
async def list_documents(
    collection: str,
    request: Request,
    tenant: Tenant,
    relay: RelayDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """A page of the collection's documents."""
    reply = await _documents(relay, request, tenant, "list", collection, limit=limit, offset=offset)
    return _dump(reply.documents)


@router.delete("/v1/collections/{collection}/documents/{document}", summary="Delete a document")
async def delete_document(
    collection: str, document: str, request: Request, tenant: Tenant, relay: RelayDep
) -> dict[str, Any]:
    """Delete a document (by id or external id) and its chunks."""
    reply = await _documents(relay, request, tenant, "delete", collection, document_id=document)
    return {"id": reply.documents[0].id, "object": "document", "deleted": True}


@router.post("/v1/collections/{collection}/search", summary="Search a collection")
async def search(
    collection: str, body: SearchQuery, request: Request, tenant: Tenant, relay: RelayDep
) -> dict[str, Any]:
    """Vector, full-text or hybrid search with metadata filters."""
    timeout = relay.settings.retrieval_timeout
    message = SearchRequestMessage(
        request_id=request.state.request_id,
        tenant_id=tenant,
        deadline=deadline_in(timeout),
        collection=collection,
        search=body,
    )
    reply = await relay.call(subjects.RETRIEVAL_SEARCH, message, SearchReply, timeout)
    return {**_dump(reply.hits), "strategy": reply.strategy}


@router.get("/v1/jobs/{job_id}", summary="Get an ingestion job")
async def get_job(job_id: str, tenant: Tenant, ingestion: IngestionDep) -> Response:
    """An ingestion job's state and progress (chunks done / total)."""
    if not _JOB_ID.match(job_id):
        raise SwitchyardError(ErrorCode.NOT_FOUND, f"job {job_id!r} not found")
    job = await ingestion.get(tenant, job_id)
    return JsonResponse(job.model_dump(mode="json"))
