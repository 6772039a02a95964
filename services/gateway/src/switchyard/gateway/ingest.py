"""Ingestion submission: documents go to the uploads object store, the job record to the jobs KV
bucket, and the job itself to the durable `retrieval.ingest.v1` stream (de-duplicated by its id)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from switchyard.contracts import ErrorCode, SwitchyardError, deadline_in, subjects
from switchyard.contracts.retrieval import (
    JOBS_BUCKET,
    UPLOADS_BUCKET,
    ContentType,
    DocumentRef,
    DocumentResult,
    IngestJobMessage,
    Job,
)
from switchyard.runtime.jetstream import (
    ensure_stream,
    ingest_stream_config,
    key_value,
    object_store,
)

JOB_TTL = 7 * 24 * 3600.0


@dataclass
class Upload:
    """One document to ingest, with its bytes."""

    content: bytes
    content_type: ContentType
    external_id: str | None
    title: str | None = None
    source: str | None = None
    metadata: dict[str, Any] | None = None


class Ingestion:
    """Submits ingestion jobs and reads their state."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._jobs: KeyValue | None = None
        self._uploads: ObjectStore | None = None

    async def _stores(self) -> tuple[KeyValue, ObjectStore]:
        if self._jobs is None or self._uploads is None:
            js = self._nc.jetstream()
            await ensure_stream(js, ingest_stream_config())
            self._jobs = await key_value(js, JOBS_BUCKET, JOB_TTL)
            self._uploads = await object_store(js, UPLOADS_BUCKET, JOB_TTL)
        return self._jobs, self._uploads

    async def submit(
        self,
        tenant: str,
        collection_id: str,
        uploads: list[Upload],
        request_id: str,
        idempotency_key: str | None,
    ) -> Job:
        """Queue a job; the same idempotency key returns the job it created before."""
        jobs, store = await self._stores()
        if idempotency_key:
            job_id = hashlib.sha256(
                f"{tenant}\n{collection_id}\n{idempotency_key}".encode()
            ).hexdigest()[:32]
            existing = await self.find(tenant, job_id)
            if existing is not None:
                return existing
        else:
            job_id = uuid.uuid4().hex
        refs = []
        for index, upload in enumerate(uploads):
            name = f"{job_id}/{index}"
            await store.put(name, upload.content)
            refs.append(
                DocumentRef(
                    external_id=upload.external_id
                    or hashlib.sha256(upload.content).hexdigest()[:32],
                    title=upload.title,
                    content_type=upload.content_type,
                    source=upload.source,
                    metadata=upload.metadata or {},
                    object_name=name,
                )
            )
        now = datetime.now(UTC)
        job = Job(
            id=job_id,
            tenant_id=tenant,
            collection_id=collection_id,
            documents_total=len(refs),
            results=[DocumentResult(external_id=ref.external_id) for ref in refs],
            created_at=now,
            updated_at=now,
        )
        await jobs.put(job_id, job.model_dump_json().encode())
        message = IngestJobMessage(
            request_id=request_id,
            tenant_id=tenant,
            deadline=deadline_in(JOB_TTL),
            job_id=job_id,
            collection_id=collection_id,
            documents=refs,
        )
        await self._nc.jetstream().publish(
            subjects.RETRIEVAL_INGEST,
            message.model_dump_json().encode(),
            headers={"Nats-Msg-Id": job_id},
        )
        return job

    async def find(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's job, if it exists."""
        jobs, _ = await self._stores()
        try:
            entry = await jobs.get(job_id)
        except (KeyNotFoundError, ValueError):
            return None
        if not entry.value:
            return None
        job = Job.model_validate_json(entry.value)
        return job if job.tenant_id == tenant else None

    async def get(self, tenant: str, job_id: str) -> Job:
        """The tenant's job, or 404."""
        job = await self.find(tenant, job_id)
        if job is None:
            raise SwitchyardError(ErrorCode.NOT_FOUND, f"job {job_id!r} not found")
        return job
