"""Part 2 of the retrieval benchmark: ingestion end to end, and where its time goes.

Starts NATS, inference (only the local embedding model), retrieval (on its own database of the
benchmark's PostgreSQL) and the gateway as processes, ingests generated Markdown documents over
HTTP and polls the job until it ends: chunks per second end to end. Then times the phases apart
on the same documents: parse + chunk in-process, embedding over HTTP (`/v1/embeddings`, batches
of 32, and one request per document as the ingestion worker batches them), and the database
upsert (`Store.replace_document` in-process with the vectors just computed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.retrieval_data import documents
from bench.retrieval_search import load_average
from switchyard.contracts.retrieval import CollectionCreate
from switchyard.retrieval.chunking import Chunk, chunk_document
from switchyard.retrieval.config import RetrievalSettings
from switchyard.retrieval.migrate import migrate
from switchyard.retrieval.parsing import ParsedDocument, parse
from switchyard.retrieval.store import NewChunk, Store, create_pool
from switchyard.runtime.embedded import NatsServer, free_port, start_nats, stop_process

EMBED_MODEL = "all-minilm-l6-v2"
API_KEY = "bench-key"
DATABASE = "bench_ingest"
BATCH = 32
CHUNK_TOKENS: int = RetrievalSettings.model_fields["chunk_tokens"].default
CHUNK_OVERLAP: int = RetrievalSettings.model_fields["chunk_overlap"].default
READY_TIMEOUT = 120.0  # the model loads before inference answers; slow on a busy machine
JOB_TIMEOUT = 300.0


@dataclass
class Proc:
    """A service process we started, and its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM to its PID, wait, SIGKILL if it does not exit."""
        stop_process(self.proc, timeout=15)

    def tail(self) -> str:
        """The end of its log."""
        return self.log.read_text(errors="replace")[-3000:]


def _start(name: str, env: dict[str, str], workdir: Path) -> Proc:
    log = workdir / f"{name}.log"
    # Only our settings: none inherited from the shell (a developer's SWITCHYARD_* would leak in).
    base = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"switchyard.{name}"],
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Proc(name, proc, log)


async def _wait_ready(http: httpx.AsyncClient, path: str, proc: Proc) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            response = await http.get(path, timeout=2)
            if response.status_code == 200:
                return
            last = response.text[:300]
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{path} not ready after {READY_TIMEOUT}s: {last}\n{proc.tail()}")


def _dsn(uri: str, database: str) -> str:
    """The same server (Unix socket) with another database."""
    before, _, after = uri.partition("?")
    return before.rsplit("/", 1)[0] + f"/{database}" + (f"?{after}" if after else "")


@contextlib.asynccontextmanager
async def stack(pg_uri: str, workdir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """NATS, inference, retrieval and the gateway, all on 127.0.0.1; everything stopped after."""
    nats: NatsServer | None = None
    procs: list[Proc] = []
    try:
        nats = start_nats(workdir / "nats", port=free_port(), log_file=workdir / "nats.log")
        common = {"SWITCHYARD_NATS_URL": nats.url}
        dsn = _dsn(pg_uri, DATABASE)
        procs.append(
            _start(
                "inference",
                {
                    **common,
                    "SWITCHYARD_INFERENCE_MODELS": json.dumps(
                        {EMBED_MODEL: {"kind": "embedding", "provider": "local"}}
                    ),
                },
                workdir,
            )
        )
        procs.append(
            _start("retrieval", {**common, "SWITCHYARD_RETRIEVAL_DATABASE_URL": dsn}, workdir)
        )
        port = free_port()
        procs.append(
            _start(
                "gateway",
                {
                    **common,
                    "SWITCHYARD_GATEWAY_HOST": "127.0.0.1",
                    "SWITCHYARD_GATEWAY_PORT": str(port),
                    "SWITCHYARD_GATEWAY_API_KEYS": API_KEY,
                },
                workdir,
            )
        )
        inference, retrieval, gateway = procs
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"authorization": f"Bearer {API_KEY}"},
            timeout=120,
            trust_env=False,
        ) as http:
            await _wait_ready(http, "/readyz", gateway)
            await _wait_ready(http, "/v1/models", inference)
            await _wait_ready(http, "/v1/collections", retrieval)
            yield http, dsn
    finally:
        for proc in reversed(procs):
            proc.stop()
        if nats is not None:
            nats.stop()


def _prepare(docs: list[tuple[str, str, str]]) -> list[list[Chunk]]:
    """Parse and chunk every document the way the ingestion worker does."""
    out = []
    for _, title, text in docs:
        parsed = parse(text.encode(), "text/markdown")
        parsed = ParsedDocument(title=title, sections=parsed.sections)
        out.append(chunk_document(parsed, CHUNK_TOKENS, CHUNK_OVERLAP))
    return out


async def _embed(http: httpx.AsyncClient, texts: list[str]) -> list[list[float]]:
    response = await http.post("/v1/embeddings", json={"model": EMBED_MODEL, "input": texts})
    response.raise_for_status()
    return [item["embedding"] for item in response.json()["data"]]


async def _ingest_once(
    http: httpx.AsyncClient, docs: list[tuple[str, str, str]], label: str, progress: dict[str, Any]
) -> dict[str, Any]:
    """One job of all `docs` into a new collection, timed until it succeeds; `progress` holds
    the latest poll (seconds, chunks done) for a run cut short."""
    created = await http.post(
        "/v1/collections",
        json={"name": f"bench-{label}-{uuid.uuid4().hex[:8]}", "embedding_model": EMBED_MODEL},
    )
    created.raise_for_status()
    collection = created.json()["id"]
    body = {
        "documents": [
            {"external_id": key, "title": title, "text": text, "content_type": "text/markdown"}
            for key, title, text in docs
        ]
    }
    start = time.perf_counter()
    response = await http.post(f"/v1/collections/{collection}/documents", json=body)
    response.raise_for_status()
    accepted = time.perf_counter() - start
    job_id = response.json()["id"]
    # The job record is the worker's own timeline: `running` once it picked the job up,
    # `chunks_total` once every document is parsed and chunked, then one `documents_done` step
    # per document embedded and stored.
    marks: dict[str, float] = {}
    deadline = time.monotonic() + JOB_TIMEOUT
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = (await http.get(f"/v1/jobs/{job_id}")).json()
        now = time.perf_counter() - start
        progress.update(
            s=round(now, 3),
            chunks_done=job.get("chunks_done"),
            chunks_total=job.get("chunks_total"),
        )
        if job.get("status") != "queued":
            marks.setdefault("running", now)
        if job.get("chunks_total") is not None:
            marks.setdefault("prepared", now)
        if job.get("status") in ("succeeded", "partial", "failed"):
            break
        await asyncio.sleep(0.02)
    else:
        raise TimeoutError(f"job {job_id} did not finish in {JOB_TIMEOUT}s: {job}")
    seconds = time.perf_counter() - start
    if job["status"] != "succeeded":
        raise RuntimeError(f"ingestion job ended {job['status']}: {job.get('error')}")
    described = (await http.get(f"/v1/collections/{collection}")).json()
    return {
        "s": round(seconds, 3),
        "documents": job["documents_done"],
        "chunks": job["chunks_done"],
        "chunks_in_collection": described["chunk_count"],
        "chunks_per_s": round(job["chunks_done"] / seconds, 1),
        "documents_per_s": round(job["documents_done"] / seconds, 2),
        "timeline_s": {
            "accepted (HTTP 202: uploads stored, job queued)": round(accepted, 3),
            "running (worker picked it up)": round(marks.get("running", seconds), 3),
            "prepared (all parsed and chunked)": round(marks.get("prepared", seconds), 3),
            "done": round(seconds, 3),
        },
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


async def _create_database(pg_uri: str) -> None:
    conn = await asyncpg.connect(pg_uri)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()


@dataclass
class _Rounds:
    """What the rounds measured so far (seconds)."""

    e2e: list[dict[str, Any]]
    parse: list[float]
    embed32: list[float]
    embed_doc: list[float]
    upsert: list[float]
    current: dict[str, Any]  # the end-to-end run in progress (latest poll)


async def run(
    pg_uri: str,
    workdir: Path,
    out: dict[str, Any],
    *,
    n_documents: int,
    repeats: int,
    per_document: bool,
    budget_s: float,
) -> None:
    """The ingestion measurements, into `out` (summarised even when cut short); see the module
    docstring. `per_document` adds, once, embedding timed one request per document (how the
    ingestion worker batches). Rounds stop early rather than run past `budget_s`."""
    docs = documents(n_documents)
    out.update(
        {
            "documents": n_documents,
            "characters": sum(len(text) for _, _, text in docs),
            "chunk_tokens": CHUNK_TOKENS,
            "chunk_overlap": CHUNK_OVERLAP,
            "load_start": load_average(),
        }
    )
    await _create_database(pg_uri)
    started = time.monotonic()
    rounds = _Rounds([], [], [], [], [], {})
    try:
        async with stack(pg_uri, workdir) as (http, dsn):
            out["stack_start_s"] = round(time.monotonic() - started, 1)
            prepared = _prepare(docs)
            texts = [chunk.text for chunks in prepared for chunk in chunks]
            out["chunks"] = len(texts)
            out["chunk_tokens_estimated_mean"] = round(
                statistics.mean(c.tokens for chunks in prepared for c in chunks), 1
            )
            await _embed(http, texts[:BATCH])  # warm the model's first call
            pool = await create_pool(dsn, 2)
            try:
                await migrate(pool)  # applied by the service already; a no-op
                await _rounds(
                    http,
                    Store(pool),
                    docs,
                    prepared,
                    texts,
                    rounds,
                    out,
                    repeats=repeats,
                    per_document=per_document,
                    budget_s=budget_s,
                )
            finally:
                await pool.close()
    finally:  # also when cancelled: keep what was measured
        if rounds.e2e:
            _summarise(out, rounds, out["chunks"])
        if rounds.current:
            out["end_to_end_run_cut_short"] = dict(rounds.current)
        out["load_end"] = load_average()


async def _rounds(
    http: httpx.AsyncClient,
    store: Store,
    docs: list[tuple[str, str, str]],
    prepared: list[list[Chunk]],
    texts: list[str],
    rounds: _Rounds,
    out: dict[str, Any],
    *,
    repeats: int,
    per_document: bool,
    budget_s: float,
) -> None:
    """End to end, then each phase apart, `repeats` times (phases interleave with the runs)."""
    began = time.monotonic()
    for r in range(repeats):
        # A busy machine makes the model slow: stop repeating rather than overrun.
        elapsed = time.monotonic() - began
        if r and elapsed + elapsed / r > budget_s:
            out["rounds_cut_short"] = f"{r} of {repeats} rounds fit in {budget_s:.0f} s"
            return
        rounds.current.clear()
        rounds.e2e.append(await _ingest_once(http, docs, f"e2e{r}", rounds.current))
        rounds.current.clear()

        start = time.perf_counter()
        again = _prepare(docs)
        rounds.parse.append(time.perf_counter() - start)
        assert sum(map(len, again)) == len(texts)

        start = time.perf_counter()
        vectors: list[list[float]] = []
        for i in range(0, len(texts), BATCH):
            vectors += await _embed(http, texts[i : i + BATCH])
        rounds.embed32.append(time.perf_counter() - start)

        rounds.upsert.append(await _upsert(store, docs, prepared, vectors, f"up{r}"))

        expected = rounds.embed32[-1] * 1.5
        if per_document and r == 0 and time.monotonic() - began + expected < budget_s:
            start = time.perf_counter()
            for chunks in prepared:  # as the worker batches: one call per document
                await _embed(http, [c.text for c in chunks])
            rounds.embed_doc.append(time.perf_counter() - start)


def _summarise(out: dict[str, Any], rounds: _Rounds, n_chunks: int) -> None:
    """Medians of the complete rounds (a phase not measured yet is left out)."""
    e2e_s = _median([run["s"] for run in rounds.e2e])
    measured = {
        "parse_chunk": rounds.parse,
        "embed_batch32_http": rounds.embed32,
        "upsert": rounds.upsert,
        "embed_per_document_http": rounds.embed_doc,
    }
    medians = {name: _median(values) if values else None for name, values in measured.items()}
    marks = rounds.e2e[0]["timeline_s"]
    timeline = {mark: _median([run["timeline_s"][mark] for run in rounds.e2e]) for mark in marks}
    out.update(
        {
            "end_to_end_runs": rounds.e2e,
            "end_to_end_s": e2e_s,
            "end_to_end_chunks_per_s": round(n_chunks / e2e_s, 1),
            "end_to_end_timeline_s": timeline,
            "phases_s": dict(medians),
            "phase_runs_s": {
                name: [round(v, 3) for v in values] for name, values in measured.items()
            },
            "phase_chunks_per_s": {
                name: round(n_chunks / v, 1) if v else None for name, v in medians.items()
            },
        }
    )
    for key, embedding in (
        ("shares_of_end_to_end", "embed_batch32_http"),
        ("shares_with_per_document_embedding", "embed_per_document_http"),
    ):
        parts = {name: medians[name] for name in ("parse_chunk", embedding, "upsert")}
        if any(v is None for v in parts.values()):
            continue
        known = {name: float(v or 0.0) for name, v in parts.items()}
        known["other"] = max(0.0, e2e_s - sum(known.values()))
        out[key] = {name: round(v / e2e_s, 3) for name, v in known.items()}
        if embedding == "embed_batch32_http":
            out["phases_s"]["other"] = round(known["other"], 3)


def _pieces(
    docs: list[tuple[str, str, str]], prepared: list[list[Chunk]], vectors: list[list[float]]
) -> Iterator[tuple[tuple[str, str, str], list[NewChunk]]]:
    at = 0
    for doc, chunks in zip(docs, prepared, strict=True):
        new = [
            NewChunk(c.position, c.text, c.section, vectors[at + k]) for k, c in enumerate(chunks)
        ]
        at += len(chunks)
        yield doc, new


async def _upsert(
    store: Store,
    docs: list[tuple[str, str, str]],
    prepared: list[list[Chunk]],
    vectors: list[list[float]],
    label: str,
) -> float:
    """Seconds to `replace_document` every document (a fresh collection, so all are created)."""
    dimension = len(vectors[0])
    created = await store.create_collection(
        "bench-upsert",
        CollectionCreate(name=f"bench-{label}-{uuid.uuid4().hex[:8]}"),
        EMBED_MODEL,
        dimension,
    )
    collection = await store.collection("bench-upsert", created.id)
    start = time.perf_counter()
    for (key, title, text), chunks in _pieces(docs, prepared, vectors):
        digest = hashlib.sha256(text.encode()).hexdigest()
        await store.replace_document(collection, key, title, None, {}, digest, chunks)
    return time.perf_counter() - start
