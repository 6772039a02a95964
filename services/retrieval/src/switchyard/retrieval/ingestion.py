"""Ingestion: durable jobs from the `retrieval.ingest.v1` JetStream stream.

A job is acknowledged only when every document is stored, so a crash mid-job loses nothing: the
message is redelivered and the job resumes from the progress kept in the jobs KV bucket. Each
document's chunks are replaced in one transaction and an unchanged document (same content hash)
is skipped, so a redelivered job still leaves every chunk exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from pydantic import ValidationError

from switchyard.contracts import ErrorCode, SwitchyardError, subjects
from switchyard.contracts.retrieval import (
    INGEST_CONSUMER,
    INGEST_STREAM,
    JOBS_BUCKET,
    UPLOADS_BUCKET,
    DocumentRef,
    DocumentResult,
    IngestJobMessage,
    Job,
)
from switchyard.retrieval.chunking import Chunk, chunk_document
from switchyard.retrieval.config import RetrievalSettings
from switchyard.retrieval.embedder import Embedder
from switchyard.retrieval.parsing import parse
from switchyard.retrieval.store import CollectionRow, NewChunk, Store
from switchyard.runtime.jetstream import key_value, object_store

log = logging.getLogger(__name__)

# Failures that another delivery may get past (inference or the database briefly away).
TRANSIENT = {ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.OVERLOADED, ErrorCode.DEADLINE_EXCEEDED}


def content_hash(ref: DocumentRef, chunks: list[Chunk], settings: RetrievalSettings) -> str:
    """What makes a stored document current: its fields, its chunks and how they were cut."""
    material = json.dumps(
        [
            ref.title,
            ref.source,
            ref.metadata,
            settings.chunk_tokens,
            settings.chunk_overlap,
            [(c.section, c.text) for c in chunks],
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class Prepared:
    """A parsed, chunked document waiting to be embedded and stored."""

    result: DocumentResult
    ref: DocumentRef
    chunks: list[Chunk]
    digest: str


class IngestWorker:
    """Pulls ingestion jobs one at a time and runs them to completion."""

    def __init__(
        self,
        client: Callable[[], Client],
        store: Store,
        embedder: Embedder,
        settings: RetrievalSettings,
    ) -> None:
        self._client = client
        self._store = store
        self._embedder = embedder
        self._settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and process jobs until `stop` is set."""
        js = self._client().jetstream()
        self._jobs = await key_value(js, JOBS_BUCKET, self._settings.job_ttl)
        self._uploads = await object_store(js, UPLOADS_BUCKET, self._settings.job_ttl)
        config = api.ConsumerConfig(
            durable_name=INGEST_CONSUMER,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._settings.ingest_ack_wait,
            max_deliver=self._settings.ingest_max_deliver,
        )
        sub = await js.pull_subscribe(
            subjects.RETRIEVAL_INGEST, durable=INGEST_CONSUMER, stream=INGEST_STREAM, config=config
        )
        log.info("ingestion worker started")
        while not stop.is_set():
            try:
                messages = await sub.fetch(1, timeout=1)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:  # connection trouble: the client reconnects by itself
                log.warning("ingest fetch failed: %s", exc)
                await asyncio.sleep(1)
                continue
            for msg in messages:
                await self._handle(msg)

    async def _handle(self, msg: Msg) -> None:
        try:
            job_message = IngestJobMessage.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("dropping undecodable ingestion job: %s", exc.errors()[:3])
            await msg.term()
            return
        job = await self._load(job_message)
        delivered = msg.metadata.num_delivered
        job.attempts = delivered
        try:
            await self._process(job_message, job, msg)
        except SwitchyardError as exc:
            if exc.code in TRANSIENT and delivered < self._settings.ingest_max_deliver:
                job.error = f"retrying: {exc.body.message}"
                await self._save(job)
                await msg.nak(delay=min(30.0, 2.0**delivered))
                return
            job.status, job.error = "failed", exc.body.message
            await self._save(job)
            await msg.term()
            return
        await msg.ack()

    async def _process(self, message: IngestJobMessage, job: Job, msg: Msg) -> None:
        job.status = "running"
        await self._save(job)
        collection = await self._store.collection(message.tenant_id, message.collection_id)
        prepared = await self._prepare(message, job)
        job.chunks_total = sum(r.chunks for r in job.results if r.status != "pending") + sum(
            len(p.chunks) for p in prepared
        )
        await self._save(job)
        for item in prepared:
            await self._store_document(collection, message, item)
            job.chunks_done += item.result.chunks
            job.documents_done += 1
            await self._save(job)
            await msg.in_progress()  # keeps the message ours while a long job runs
            with contextlib.suppress(Exception):
                await self._uploads.delete(item.ref.object_name)
        failed = sum(r.status == "failed" for r in job.results)
        job.status = (
            "failed" if failed == len(job.results) else "partial" if failed else "succeeded"
        )
        job.error = None if not failed else f"{failed} document(s) failed"
        await self._save(job)
        log.info(
            "ingestion job done",
            extra={"job": job.id, "status": job.status, "chunks": job.chunks_done},
        )

    async def _prepare(self, message: IngestJobMessage, job: Job) -> list[Prepared]:
        """Fetch, parse and chunk the documents not finished by an earlier delivery."""
        prepared = []
        for result, submitted in zip(job.results, message.documents, strict=True):
            if result.status != "pending":
                continue
            try:
                data = (await self._uploads.get(submitted.object_name)).data or b""
                # Parsing (PDF above all) and chunking are CPU work: off the event loop.
                ref, chunks = await asyncio.to_thread(self._chunks, data, submitted)
            except SwitchyardError as exc:
                result.status, result.error = "failed", exc.body.message
                job.documents_done += 1
                continue
            except nats.js.errors.NotFoundError:
                result.status, result.error = "failed", "the uploaded content expired"
                job.documents_done += 1
                continue
            prepared.append(
                Prepared(result, ref, chunks, content_hash(ref, chunks, self._settings))
            )
        return prepared

    def _chunks(self, data: bytes, ref: DocumentRef) -> tuple[DocumentRef, list[Chunk]]:
        """The document's chunks; its title from the content when the client gave none."""
        parsed = parse(data, ref.content_type)
        if ref.title:
            parsed = type(parsed)(title=ref.title, sections=parsed.sections)
        elif parsed.title:
            ref = ref.model_copy(update={"title": parsed.title})
        chunks = chunk_document(parsed, self._settings.chunk_tokens, self._settings.chunk_overlap)
        return ref, chunks

    async def _store_document(
        self, collection: CollectionRow, message: IngestJobMessage, item: Prepared
    ) -> None:
        ref, result = item.ref, item.result
        if await self._store.content_hash(collection, ref.external_id) == item.digest:
            result.status, result.chunks = "unchanged", len(item.chunks)
            return
        vectors, _ = await self._embedder.embed(
            [chunk.text for chunk in item.chunks],
            collection.embedding_model,
            collection.tenant_id,
            message.request_id,
        )
        document_id, status = await self._store.replace_document(
            collection,
            ref.external_id,
            ref.title,
            ref.source,
            ref.metadata,
            item.digest,
            [
                NewChunk(c.position, c.text, c.section, vector)
                for c, vector in zip(item.chunks, vectors, strict=True)
            ],
        )
        result.document_id, result.status, result.chunks = document_id, status, len(item.chunks)  # type: ignore[assignment]
        with contextlib.suppress(Exception):
            await self._client().publish(
                subjects.EVENTS_DOCUMENT_INDEXED,
                json.dumps(
                    {
                        "tenant_id": collection.tenant_id,
                        "collection_id": str(collection.id),
                        "document_id": document_id,
                        "external_id": ref.external_id,
                        "status": status,
                        "chunks": len(item.chunks),
                    }
                ).encode(),
            )

    async def _load(self, message: IngestJobMessage) -> Job:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            entry = await self._jobs.get(message.job_id)
            if entry.value:
                job = Job.model_validate_json(entry.value)
                if len(job.results) == len(message.documents):
                    return job
        now = datetime.now(UTC)
        return Job(
            id=message.job_id,
            tenant_id=message.tenant_id,
            collection_id=message.collection_id,
            documents_total=len(message.documents),
            results=[DocumentResult(external_id=d.external_id) for d in message.documents],
            created_at=now,
            updated_at=now,
        )

    async def _save(self, job: Job) -> None:
        job.updated_at = datetime.now(UTC)
        await self._jobs.put(job.id, job.model_dump_json().encode())
