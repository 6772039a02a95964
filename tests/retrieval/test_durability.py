"""A crash of retrieval mid-ingestion loses nothing; with retrieval down, RAG chat degrades."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from tests.conftest import model_table
from tests.support.collections import new_collection, wait_job
from tests.support.fake_openai import OK_TEXT, FakeOpenAI
from tests.support.processes import start_service, wait_http
from tests.support.stacks import PrivateStack, private_stack

from switchyard.runtime.embedded import PostgresServer

RETRIEVAL_ENV = {
    "SWITCHYARD_RETRIEVAL_INGEST_ACK_WAIT": "3",  # redelivery comes quickly after a crash
}


@pytest.fixture(scope="module")
def crashable(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer, fake_provider: FakeOpenAI
) -> Iterator[PrivateStack]:
    """A stack of its own (NATS, inference with embeddings, retrieval, gateway) on the
    session's PostgreSQL, whose retrieval process the tests kill."""
    models = {
        "fake-ok": model_table(fake_provider)["fake-ok"],
        "all-minilm-l6-v2": {"kind": "embedding", "provider": "local"},
    }
    env = {**RETRIEVAL_ENV, "SWITCHYARD_RETRIEVAL_DATABASE_URL": postgres.uri}
    with private_stack(tmp_path_factory.mktemp("crash"), models=models, retrieval_env=env) as stack:
        yield stack


@pytest.fixture(scope="module")
async def crash_http(crashable: PrivateStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=crashable.base_url, headers=crashable.headers, timeout=30
    ) as c:
        yield c


def restart_retrieval(stack: PrivateStack, postgres: PostgresServer) -> None:
    env = {
        **RETRIEVAL_ENV,
        "SWITCHYARD_NATS_URL": stack.nats.url,
        "SWITCHYARD_RETRIEVAL_DATABASE_URL": postgres.uri,
    }
    assert stack.workdir is not None
    service = start_service("retrieval", env, stack.workdir)
    stack.extra.append(service)
    wait_http(f"{stack.base_url}/v1/collections", service, headers=stack.headers)


@pytest.mark.timeout(400)  # a large job, a crash, a redelivery: slow on a busy 2-core machine
async def test_crash_mid_ingestion_loses_nothing(
    crashable: PrivateStack,
    crash_http: httpx.AsyncClient,
    postgres: PostgresServer,
    db: asyncpg.Pool,
) -> None:
    assert crashable.retrieval is not None
    collection = (await new_collection(crash_http, "crash"))["id"]
    paragraph = (
        "Chapter {n}. The archive keeps ledgers of every voyage, with the weather, the cargo and "
        "the crew for each day at sea. Clerks copied them by hand until the printing press came. "
    )
    documents = [
        {
            "external_id": f"ledger-{n}",
            "text": "\n\n".join(paragraph.format(n=f"{n}.{k}") * 3 for k in range(6)),
        }
        for n in range(40)
    ]
    response = await crash_http.post(
        f"/v1/collections/{collection}/documents", json={"documents": documents}
    )
    assert response.status_code == 202
    job_id = response.json()["id"]

    # Wait until the job is under way, then kill retrieval without warning.
    for _ in range(600):
        job = (await crash_http.get(f"/v1/jobs/{job_id}")).json()
        if job["chunks_done"] > 0:
            break
        await asyncio.sleep(0.05)
    assert 0 < job["chunks_done"] < (job["chunks_total"] or 10**9), job
    os.kill(crashable.retrieval.proc.pid, signal.SIGKILL)
    await asyncio.to_thread(crashable.retrieval.proc.wait, 10)
    done_at_crash = job["chunks_done"]

    await asyncio.to_thread(restart_retrieval, crashable, postgres)
    finished = await wait_job(crash_http, job_id, timeout=180)
    assert finished["status"] == "succeeded", finished
    assert finished["attempts"] >= 2  # it was redelivered
    assert finished["chunks_done"] == finished["chunks_total"] > done_at_crash

    counts = await db.fetchrow(
        "SELECT count(*) AS chunks, count(DISTINCT (document_id, position)) AS distinct_chunks,"
        " count(DISTINCT document_id) AS documents FROM retrieval.chunks WHERE collection_id = $1::uuid",
        collection,
    )
    assert counts is not None
    assert counts["documents"] == len(documents)
    assert counts["chunks"] == counts["distinct_chunks"] == finished["chunks_total"]
    stored = await db.fetchval(
        "SELECT sum(chunk_count) FROM retrieval.documents WHERE collection_id = $1::uuid",
        collection,
    )
    assert stored == finished["chunks_total"]


async def test_rag_answers_degraded_when_retrieval_is_down(
    crashable: PrivateStack, crash_http: httpx.AsyncClient, postgres: PostgresServer
) -> None:
    collection = (await new_collection(crash_http, "down"))["name"]
    for service in [crashable.retrieval, *crashable.extra]:
        if service is not None and service.proc.poll() is None:
            await asyncio.to_thread(service.stop)
    try:
        response = await crash_http.post(
            "/v1/chat/completions",
            json={
                "model": "fake-ok",
                "messages": [{"role": "user", "content": "What does the archive keep?"}],
                "rag": {"collections": [collection]},
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["degraded"] == ["retrieval"]
        assert response.headers["x-switchyard-degraded"] == "retrieval"
        assert body["choices"][0]["message"]["content"] == OK_TEXT
        assert "citations" not in body
    finally:
        await asyncio.to_thread(restart_retrieval, crashable, postgres)
