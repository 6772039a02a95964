"""Helpers for tests that use collections: create one, ingest documents, wait for the job."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx


async def new_collection(
    http: httpx.AsyncClient, prefix: str = "c", **extra: Any
) -> dict[str, Any]:
    """A fresh collection with a unique name."""
    response = await http.post(
        "/v1/collections", json={"name": f"{prefix}-{uuid.uuid4().hex[:12]}", **extra}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def wait_job(http: httpx.AsyncClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll a job until it ends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        job: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}")).json()
        if job.get("status") in ("succeeded", "partial", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def ingest(
    http: httpx.AsyncClient, collection: str, documents: list[dict[str, Any]], **headers: str
) -> dict[str, Any]:
    """Ingest documents (JSON) and wait until the job ends; returns the finished job."""
    response = await http.post(
        f"/v1/collections/{collection}/documents", json={"documents": documents}, headers=headers
    )
    assert response.status_code == 202, response.text
    return await wait_job(http, response.json()["id"])


async def search(
    http: httpx.AsyncClient, collection: str, query: str, **options: Any
) -> list[dict[str, Any]]:
    """Search hits, best first."""
    response = await http.post(
        f"/v1/collections/{collection}/search", json={"query": query, **options}
    )
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["data"]
    return hits
