"""Retrieval: collections, documents, ingestion jobs, search and the RAG extension of chat.

Subjects (request/reply unless said): `retrieval.collections.v1`, `retrieval.documents.v1`,
`retrieval.search.v1`; `retrieval.ingest.v1` is durable work on a JetStream stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from switchyard.contracts.envelope import Envelope
from switchyard.contracts.errors import ServiceReply

INGEST_STREAM: Final = "RETRIEVAL_INGEST"
INGEST_CONSUMER: Final = "retrieval-ingest"
UPLOADS_BUCKET: Final = "retrieval_uploads"
JOBS_BUCKET: Final = "retrieval_jobs"

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
FIELD_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"

_STRICT = ConfigDict(extra="forbid")
Scalar = str | int | float | bool
Bound = float | str  # a number, or an ISO date/time


# --- metadata filters


class Condition(BaseModel):
    """A test on one metadata field: `eq`, `in`, or a range (`gt`/`gte`/`lt`/`lte`, numbers or
    ISO dates)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    field: str = Field(pattern=FIELD_PATTERN)
    eq: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1, max_length=1000)
    gt: Bound | None = None
    gte: Bound | None = None
    lt: Bound | None = None
    lte: Bound | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        ranges = [v for v in (self.gt, self.gte, self.lt, self.lte) if v is not None]
        kinds = (self.eq is not None) + (self.in_ is not None) + bool(ranges)
        if kinds != 1:
            raise ValueError("a condition needs exactly one of eq, in, or range bounds")
        if ranges and len({isinstance(v, str) for v in ranges}) > 1:
            raise ValueError("range bounds must all be numbers or all be dates")
        return self


class AllOf(BaseModel):
    """Every sub-filter holds."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)
    all_: list[Filter] = Field(alias="and", min_length=1, max_length=32)


class AnyOf(BaseModel):
    """At least one sub-filter holds."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)
    any_: list[Filter] = Field(alias="or", min_length=1, max_length=32)


def _filter_kind(value: Any) -> str:
    if isinstance(value, dict):
        if "and" in value:
            return "and"
        if "or" in value:
            return "or"
    if isinstance(value, AllOf):
        return "and"
    if isinstance(value, AnyOf):
        return "or"
    return "condition"


Filter = Annotated[
    Annotated[AllOf, Tag("and")]
    | Annotated[AnyOf, Tag("or")]
    | Annotated[Condition, Tag("condition")],
    Discriminator(_filter_kind),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()

SearchMode = Literal["vector", "fulltext", "hybrid"]


# --- collections


class CollectionCreate(BaseModel):
    """`POST /v1/collections` body."""

    model_config = _STRICT
    name: str = Field(pattern=NAME_PATTERN, description="Unique per tenant.")
    embedding_model: str = Field(
        default="default", min_length=1, description="Embedding model (fixed at creation)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class Collection(BaseModel):
    """A collection of documents searched together."""

    id: str
    object: Literal["collection"] = "collection"
    name: str
    embedding_model: str
    dimension: int
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    document_count: int = 0
    chunk_count: int = 0


class CollectionsRequest(Envelope):
    """`retrieval.collections.v1`."""

    op: Literal["create", "list", "get", "delete"]
    collection: str | None = Field(default=None, description="Id or name (get, delete).")
    create: CollectionCreate | None = None
    dimension: int | None = Field(default=None, ge=1, le=2000, description="For create.")


class CollectionsReply(ServiceReply):
    """Reply to `retrieval.collections.v1`."""

    collections: list[Collection] = Field(default_factory=list)


# --- documents and ingestion

ContentType = Literal["text/plain", "text/markdown", "text/html", "application/pdf"]


class DocumentInput(BaseModel):
    """One document of a JSON ingestion request."""

    model_config = _STRICT
    external_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="Your id (default: a hash)."
    )
    title: str | None = Field(default=None, max_length=1000)
    text: str = Field(min_length=1, description="The document's content.")
    content_type: Literal["text/plain", "text/markdown", "text/html"] = "text/plain"
    source: str | None = Field(default=None, max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class IngestRequest(BaseModel):
    """`POST /v1/collections/{id}/documents` JSON body."""

    model_config = _STRICT
    documents: list[DocumentInput] = Field(min_length=1, max_length=1000)


class DocumentRef(BaseModel):
    """A document of an ingestion job; its bytes wait in the uploads object store."""

    external_id: str
    title: str | None = None
    content_type: ContentType
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    object_name: str


class IngestJobMessage(Envelope):
    """`retrieval.ingest.v1` (JetStream, `Nats-Msg-Id` = job id): documents to ingest."""

    job_id: str
    collection_id: str
    documents: list[DocumentRef]


class DocumentResult(BaseModel):
    """What ingestion did with one document."""

    external_id: str
    status: Literal["pending", "created", "updated", "unchanged", "failed"] = "pending"
    document_id: str | None = None
    chunks: int = 0
    error: str | None = None


class Job(BaseModel):
    """An ingestion job's state (kept in the `retrieval_jobs` KV bucket)."""

    id: str
    object: Literal["ingestion_job"] = "ingestion_job"
    tenant_id: str
    collection_id: str
    status: Literal["queued", "running", "succeeded", "partial", "failed"] = "queued"
    documents_total: int = 0
    documents_done: int = 0
    chunks_total: int | None = None
    chunks_done: int = 0
    attempts: int = 0
    error: str | None = None
    results: list[DocumentResult] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class Document(BaseModel):
    """A stored document."""

    id: str
    object: Literal["document"] = "document"
    external_id: str
    title: str | None
    source: str | None
    metadata: dict[str, Any]
    content_hash: str
    chunk_count: int
    created_at: datetime
    updated_at: datetime


class DocumentsRequest(Envelope):
    """`retrieval.documents.v1`."""

    op: Literal["list", "delete"]
    collection: str
    document_id: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class DocumentsReply(ServiceReply):
    """Reply to `retrieval.documents.v1`."""

    documents: list[Document] = Field(default_factory=list)


# --- search


class SearchWeights(BaseModel):
    """Weights of reciprocal rank fusion."""

    model_config = _STRICT
    vector: float = Field(default=1.0, ge=0, le=10)
    fulltext: float = Field(default=1.0, ge=0, le=10)


class SearchQuery(BaseModel):
    """`POST /v1/collections/{id}/search` body."""

    model_config = _STRICT
    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(default=5, ge=1, le=100)
    mode: SearchMode = "hybrid"
    filters: Filter | None = None
    ef_search: int | None = Field(default=None, ge=1, le=1000, description="HNSW candidate list.")
    weights: SearchWeights = Field(default_factory=SearchWeights)


class SearchRequestMessage(Envelope):
    """`retrieval.search.v1`."""

    collection: str = Field(description="Id or name.")
    search: SearchQuery


class SearchHit(BaseModel):
    """One search result."""

    chunk_id: str
    document_id: str
    external_id: str
    title: str | None
    source: str | None
    text: str
    section: str | None
    position: int
    score: float
    metadata: dict[str, Any]


class SearchReply(ServiceReply):
    """Reply to `retrieval.search.v1`."""

    hits: list[SearchHit] = Field(default_factory=list)
    strategy: str | None = Field(default=None, description="How the vector search ran.")


# --- RAG


class RagOptions(BaseModel):
    """The `rag` extension field of a chat request (`extra_body` in the openai SDK)."""

    model_config = _STRICT
    collections: list[str] = Field(min_length=1, max_length=8, description="Ids or names.")
    top_k: int = Field(default=4, ge=1, le=20)
    mode: SearchMode = "hybrid"
    filters: Filter | None = None


class Citation(BaseModel):
    """A source the answer was grounded on; `index` is its number in the prompt ([1], [2] …)."""

    index: int
    collection: str
    document_id: str
    external_id: str
    chunk_id: str
    title: str | None
    snippet: str
    score: float
