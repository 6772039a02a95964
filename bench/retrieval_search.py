"""Part 1 of the retrieval benchmark: vector search over N synthetic chunks in PostgreSQL.

Loads the chunks with COPY (HNSW index dropped, then rebuilt the way `Store.create_collection`
defines it), then measures `Store.vector_search` (HNSW at several ef_search, and exact), the
`Searcher` path the service runs (the bounded `candidates` count, then the search), and filtered
searches; captures the query plans of the very SQL the store sends (EXPLAIN ANALYZE).
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import numpy as np
import numpy.typing as npt
from asyncpg.connection import LoggedQuery

from bench.retrieval_data import Mixture, chunk_texts
from switchyard.contracts.retrieval import CollectionCreate, Condition, SearchQuery
from switchyard.retrieval.config import RetrievalSettings
from switchyard.retrieval.embedder import Embedder
from switchyard.retrieval.search import Searcher
from switchyard.retrieval.store import CollectionRow, Store, create_pool

TENANT = "bench"
MODEL = "synthetic-mixture"
TOP_K = 10
GROUPS = 100  # metadata {"group": n}: one group is 1% of the chunks
WIDE_GROUPS = 15  # an `in` filter over 15 groups: 15% of the chunks
TARGET_P50_MS = 10.0
TARGET_RECALL = 0.95
DEFAULT_EF: int = RetrievalSettings.model_fields["default_ef_search"].default
EXACT_THRESHOLD: int = RetrievalSettings.model_fields["exact_search_threshold"].default

T = TypeVar("T")
_LITERAL = re.compile(r"'\[[^\]]{100,}\]'")


def summary(ms: list[float]) -> dict[str, float]:
    """p50 / p99 / mean of latencies in milliseconds."""
    values = np.asarray(ms, dtype=np.float64)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
        "n": len(ms),
    }


def across_rounds(rounds: list[list[float]]) -> dict[str, Any]:
    """The median over rounds of each round's p50 and p99, with every round's figures."""
    each = [summary(r) for r in rounds]
    return {
        "p50_ms": round(statistics.median(s["p50_ms"] for s in each), 3),
        "p99_ms": round(statistics.median(s["p99_ms"] for s in each), 3),
        "rounds": each,
    }


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    """The result of `awaitable` and how long awaiting it took, in milliseconds."""
    start = time.perf_counter()
    result = await awaitable
    return result, (time.perf_counter() - start) * 1000.0


def load_average() -> list[float]:
    """`uptime`'s 1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


class GivenVectors(Embedder):
    """An `Embedder` that returns precomputed vectors (the query text is the key): the Searcher's
    own code runs, without an embedding model."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        super().__init__(_no_client, batch=1, timeout=1.0)
        self._vectors = vectors

    async def embed(
        self, texts: list[str], model: str, tenant: str, request_id: str
    ) -> tuple[list[list[float]], str]:
        return [self._vectors[text] for text in texts], model


def _no_client() -> Any:
    raise RuntimeError("the benchmark's embedder never calls inference")


# --- loading


def _vector_bytes(vector: npt.NDArray[np.float32]) -> bytes:
    """pgvector's binary form: int16 dimension, int16 unused, float32 big-endian values."""
    return struct.pack(">hh", vector.shape[0], 0) + vector.astype(">f4").tobytes()


async def _loader(uri: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(uri, command_timeout=900)
    await conn.set_type_codec(
        "vector", encoder=bytes, decoder=bytes, schema="public", format="binary"
    )
    return conn


@dataclass
class Loaded:
    """The loaded collection and what the measurements need to know about its rows."""

    collection: CollectionRow
    ids: list[str]  # chunk id of each row of the mixture
    groups: npt.NDArray[np.int64]  # the group of each row
    report: dict[str, Any]


async def load(
    uri: str, store: Store, mix: Mixture, name: str, chunks_per_doc: int, tail: int, seed: int
) -> Loaded:
    """Create the collection, COPY the documents and chunks with the HNSW index dropped,
    VACUUM ANALYZE, rebuild the index, then COPY the last `tail` chunks with the index present."""
    n, dimension = mix.vectors.shape
    created = await store.create_collection(TENANT, CollectionCreate(name=name), MODEL, dimension)
    collection = await store.collection(TENANT, created.id)
    index = f"chunks_hnsw_{dimension}"
    rng = np.random.default_rng(seed)
    n_docs = math.ceil(n / chunks_per_doc)
    doc_ids = [uuid.uuid4() for _ in range(n_docs)]
    doc_groups = rng.integers(0, GROUPS, size=n_docs)
    groups = np.repeat(doc_groups, chunks_per_doc)[:n].astype(np.int64)
    chunk_ids = [uuid.uuid4() for _ in range(n)]
    texts = chunk_texts(n, seed=seed)
    report: dict[str, Any] = {"chunks": n, "documents": n_docs, "dimension": dimension}

    def chunk_records(rows: range) -> Iterator[tuple[Any, ...]]:
        for i in rows:
            doc = i // chunks_per_doc
            yield (
                chunk_ids[i],
                doc_ids[doc],
                collection.id,
                TENANT,
                i % chunks_per_doc,
                texts[i],
                None,
                json.dumps({"group": int(groups[i])}),
                dimension,
                _vector_bytes(mix.vectors[i]),
            )

    columns = [
        "id", "document_id", "collection_id", "tenant_id", "position", "text", "section",
        "metadata", "dimension", "embedding",
    ]  # fmt: skip
    conn = await _loader(uri)
    notices: list[str] = []
    conn.add_log_listener(lambda _c, message: notices.append(str(message)))
    try:
        definition: str = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'retrieval' AND indexname = $1",
            index,
        )
        report["index_definition"] = definition
        await conn.execute(f"DROP INDEX retrieval.{index}")
        _, ms = await timed(
            conn.copy_records_to_table(
                "documents",
                schema_name="retrieval",
                columns=[
                    "id",
                    "collection_id",
                    "tenant_id",
                    "external_id",
                    "title",
                    "source",
                    "metadata",
                    "content_hash",
                    "chunk_count",
                ],
                records=(
                    (
                        doc_ids[d],
                        collection.id,
                        TENANT,
                        f"doc-{d:07d}",
                        f"Document {d}",
                        None,
                        json.dumps({"group": int(doc_groups[d])}),
                        f"hash-{d}",
                        min(chunks_per_doc, n - d * chunks_per_doc),
                    )
                    for d in range(n_docs)
                ),
            )
        )
        report["copy_documents_s"] = round(ms / 1000, 2)
        head = n - tail
        _, ms = await timed(
            conn.copy_records_to_table(
                "chunks",
                schema_name="retrieval",
                columns=columns,
                records=chunk_records(range(head)),
            )
        )
        report["copy_chunks_without_hnsw"] = {
            "rows": head,
            "s": round(ms / 1000, 2),
            "rows_per_s": round(head / (ms / 1000)),
        }
        _, ms = await timed(conn.execute("VACUUM (ANALYZE) retrieval.chunks, retrieval.documents"))
        report["vacuum_analyze_s"] = round(ms / 1000, 2)
        await conn.execute(
            "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 1"
        )
        report["load_before_build"] = load_average()
        _, ms = await timed(conn.execute(definition))
        report["hnsw_build"] = {
            "rows": head,
            "s": round(ms / 1000, 2),
            "maintenance_work_mem": "1GB",
            "max_parallel_maintenance_workers": 1,
            "notices": notices[:5],
        }
        _, ms = await timed(
            conn.copy_records_to_table(
                "chunks",
                schema_name="retrieval",
                columns=columns,
                records=chunk_records(range(head, n)),
            )
        )
        rate = tail / (ms / 1000) if tail else 0.0
        report["copy_chunks_with_hnsw"] = {
            "rows": tail,
            "s": round(ms / 1000, 2),
            "rows_per_s": round(rate),
            "estimated_s_for_all_rows": round(n / rate) if rate else None,
        }
        sizes = await conn.fetchrow(
            "SELECT pg_relation_size('retrieval.chunks') AS heap,"
            " pg_relation_size(reltoastrelid) AS toast,"
            " pg_relation_size($1::regclass) AS hnsw,"
            " pg_total_relation_size('retrieval.chunks') AS total"
            " FROM pg_class WHERE oid = 'retrieval.chunks'::regclass",
            f"retrieval.{index}",
        )
        assert sizes is not None
        report["sizes_mb"] = {k: round(v / 2**20, 1) for k, v in dict(sizes).items()}
        report["settings"] = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("shared_buffers", "work_mem", "effective_cache_size", "jit")
        }
    finally:
        await conn.close()
    return Loaded(collection, [str(i) for i in chunk_ids], groups, report)


# --- measurements


def _ids(hits: list[Any]) -> list[str]:
    return [hit.chunk_id for hit in hits]


def _recall(found: list[str], truth: list[str]) -> float:
    return len(set(found) & set(truth)) / len(truth) if truth else 1.0


def _numpy_top(
    mix: Mixture, ids: list[str], query: npt.NDArray[np.float32], rows: Any = None
) -> list[str]:
    """Brute-force top-k by cosine (dot product of unit vectors), optionally over some rows."""
    if rows is None:
        rows = np.arange(mix.vectors.shape[0])
    scores = mix.vectors[rows] @ query
    best = rows[np.argsort(-scores)[:TOP_K]]
    return [ids[i] for i in best.tolist()]


async def measure(
    uri: str,
    store: Store,
    loaded: Loaded,
    mix: Mixture,
    efs: list[int],
    repeats: int,
    out: dict[str, Any],
) -> None:
    """Every search measurement, into `out` as they complete; see the module docstring.

    Each strategy gets a pool of its own: `store` (HNSW only), one for the exact path, one for
    the `Searcher`. With a shared pool, PostgreSQL's plan cache would run one strategy's plan
    for the other (see `_plan_cache`), and the figures would mix the two.
    """
    collection, ids = loaded.collection, loaded.ids
    queries = [q.tolist() for q in mix.queries]
    out.update({"load_start": load_average(), "queries": len(queries)})
    exact_pool = await create_pool(uri, 1)
    service_pool = await create_pool(uri, 5)  # the service's default pool_size
    try:
        exact_store, service_store = Store(exact_pool), Store(service_pool)

        async def hnsw(q: list[float], ef: int) -> list[Any]:
            return await store.vector_search(collection, q, TOP_K, None, exact=False, ef_search=ef)

        async def exact(q: list[float]) -> list[Any]:
            return await exact_store.vector_search(
                collection, q, TOP_K, None, exact=True, ef_search=0
            )

        # Warm the caches (heap, TOAST and index pages) before timing anything.
        for i, q in enumerate(queries[:50]):
            await hnsw(q, max(efs))
            if i < 5:  # an exact scan reads the whole table: a few suffice
                await exact(q)
        # Ground truth: the exact path of the store, checked against numpy.
        truth: list[list[str]] = []
        exact_ms: list[float] = []
        for q in queries:
            hits, ms = await timed(exact(q))
            truth.append(_ids(hits))
            exact_ms.append(ms)
        agreement = statistics.mean(
            _recall(truth[i], _numpy_top(mix, ids, mix.queries[i])) for i in range(len(queries))
        )
        out["exact_no_filter"] = {**summary(exact_ms), "agreement_with_numpy": round(agreement, 4)}

        # HNSW at each ef_search; rounds interleave the ef values so that load drift hits all
        # of them alike.
        rounds: dict[int, list[list[float]]] = {ef: [] for ef in efs}
        recall: dict[int, float] = {}
        for r in range(repeats):
            for ef in efs:
                ms_list: list[float] = []
                found: list[list[str]] = []
                for q in queries:
                    hits, ms = await timed(hnsw(q, ef))
                    ms_list.append(ms)
                    found.append(_ids(hits))
                rounds[ef].append(ms_list)
                if r == 0:
                    recall[ef] = statistics.mean(
                        _recall(f, t) for f, t in zip(found, truth, strict=True)
                    )
        out["hnsw"] = [
            {"ef_search": ef, "recall_at_10": round(recall[ef], 4), **across_rounds(rounds[ef])}
            for ef in efs
        ]

        # The Searcher path: candidates (bounded count) + search, at the default ef and at the
        # lowest ef that met the target; the count alone too.
        keys = {f"q{i}": q for i, q in enumerate(queries)}
        searcher = Searcher(service_store, GivenVectors(keys), EXACT_THRESHOLD, DEFAULT_EF)
        meeting = [
            h["ef_search"]
            for h in out["hnsw"]
            if h["recall_at_10"] >= TARGET_RECALL and h["p50_ms"] <= TARGET_P50_MS
        ]
        path: dict[str, Any] = {}
        count_rounds: list[list[float]] = []
        for _ in range(repeats):
            count_ms = []
            for _key in keys:
                _, ms = await timed(service_store.candidates(collection, None, EXACT_THRESHOLD + 1))
                count_ms.append(ms)
            count_rounds.append(count_ms)
        path["candidates_count"] = across_rounds(count_rounds)
        for ef in sorted({DEFAULT_EF, *(meeting[:1])}):
            ef_rounds: list[list[float]] = []
            strategies: dict[str, int] = {}
            for _ in range(repeats):
                ms_list = []
                for key in keys:
                    query = SearchQuery(query=key, mode="vector", top_k=TOP_K, ef_search=ef)
                    (_, strategy), ms = await timed(searcher.search(collection, query, "bench"))
                    ms_list.append(ms)
                    strategies[str(strategy)] = strategies.get(str(strategy), 0) + 1
                ef_rounds.append(ms_list)
            path[f"searcher_ef_{ef}"] = {**across_rounds(ef_rounds), "strategies": strategies}
        out["searcher"] = path

        # Filters: 1% of the rows (eq on a GIN-indexed jsonb field) → the exact path; 15%
        # (`in`, not indexable) → HNSW with post-filtering, ef widened until top_k rows survive.
        out["filtered"] = await _filtered(store, exact_store, searcher, loaded, mix, keys, repeats)
    finally:
        await exact_pool.close()
        await service_pool.close()
    out["explain"] = await _explain(uri, loaded, queries[0])
    out["plan_cache"] = await _plan_cache(uri, loaded, mix)
    out["load_end"] = load_average()


async def _filtered(
    hnsw_store: Store,
    exact_store: Store,
    searcher: Searcher,
    loaded: Loaded,
    mix: Mixture,
    keys: dict[str, list[float]],
    repeats: int,
) -> dict[str, Any]:
    collection, ids, groups = loaded.collection, loaded.ids, loaded.groups
    result: dict[str, Any] = {}
    wide = Condition.model_validate({"field": "group", "in": list(range(WIDE_GROUPS))})
    cases: dict[str, Callable[[int], Condition]] = {
        "eq_1pct": lambda i: Condition(field="group", eq=i % GROUPS),
        "in_15pct": lambda _i: wide,
    }
    for name, make in cases.items():
        rounds_ms: list[list[float]] = []
        direct_rounds: list[list[float]] = []
        strategies: dict[str, int] = {}
        recalls: list[float] = []
        hnsw_hits: list[int] = []
        for r in range(repeats):
            ms_list, direct_ms = [], []
            for i, key in enumerate(keys):
                condition = make(i)
                query = SearchQuery(query=key, mode="vector", top_k=TOP_K, filters=condition)
                (hits, strategy), ms = await timed(searcher.search(collection, query, "bench"))
                ms_list.append(ms)
                strategies[str(strategy)] = strategies.get(str(strategy), 0) + 1
                if name == "eq_1pct":
                    _, ms = await timed(
                        exact_store.vector_search(
                            collection, keys[key], TOP_K, condition, exact=True, ef_search=0
                        )
                    )
                    direct_ms.append(ms)
                if r == 0:
                    allowed = (
                        np.flatnonzero(groups == i % GROUPS)
                        if name == "eq_1pct"
                        else np.flatnonzero(groups < WIDE_GROUPS)
                    )
                    truth = _numpy_top(mix, ids, mix.queries[i], allowed)
                    recalls.append(_recall(_ids(hits), truth))
                    plain = await hnsw_store.vector_search(
                        collection, keys[key], TOP_K, condition, exact=False, ef_search=DEFAULT_EF
                    )
                    hnsw_hits.append(len(plain))
            rounds_ms.append(ms_list)
            if direct_ms:
                direct_rounds.append(direct_ms)
        share = (
            float(np.mean(groups == 0))
            if name == "eq_1pct"
            else float(np.mean(groups < WIDE_GROUPS))
        )
        result[name] = {
            "share_of_rows": round(share, 4),
            "searcher": {**across_rounds(rounds_ms), "strategies": strategies},
            "recall_at_10_vs_numpy": round(statistics.mean(recalls), 4),
            f"hnsw_ef_{DEFAULT_EF}_hits_returned_mean": round(statistics.mean(hnsw_hits), 2),
        }
        if direct_rounds:
            result[name]["store_exact_only"] = across_rounds(direct_rounds)
    return result


async def _plan_cache(uri: str, loaded: Loaded, mix: Mixture, pairs: int = 10) -> dict[str, Any]:
    """What happens when exact and HNSW searches share a connection, as they do in the service.

    `vector_search` picks the strategy with `SET LOCAL` planner settings, but both strategies
    send the same SQL text; asyncpg prepares it once per connection, and after five executions
    PostgreSQL may switch to a cached generic plan, which it does not re-plan when the settings
    change. Exact and HNSW calls alternate on one connection (with the same 1% filter, or with
    none); each call's hits, recall@10 against numpy and latency show which plan really ran.
    The `force_custom_plan` runs repeat them with `plan_cache_mode = force_custom_plan`.
    """
    collection, ids, groups = loaded.collection, loaded.ids, loaded.groups
    forced = uri + ("&" if "?" in uri else "?") + "plan_cache_mode=force_custom_plan"
    scenarios: dict[str, tuple[str, bool]] = {
        "filter_1pct": (uri, True),
        "no_filter": (uri, False),
        "filter_1pct_force_custom_plan": (forced, True),
        "no_filter_force_custom_plan": (forced, False),
    }
    out: dict[str, Any] = {}
    for name, (dsn, filtered) in scenarios.items():
        pool = await create_pool(dsn, 1)
        calls: dict[str, list[tuple[int, float, float]]] = {"exact": [], "hnsw": []}
        try:
            store = Store(pool)
            for i in range(min(pairs, len(mix.queries))):
                q = mix.queries[i].tolist()
                condition = Condition(field="group", eq=i % GROUPS) if filtered else None
                rows = np.flatnonzero(groups == i % GROUPS) if filtered else None
                truth = _numpy_top(mix, ids, mix.queries[i], rows)
                for strategy in ("exact", "hnsw"):
                    hits, ms = await timed(
                        store.vector_search(
                            collection,
                            q,
                            TOP_K,
                            condition,
                            exact=strategy == "exact",
                            ef_search=DEFAULT_EF,
                        )
                    )
                    calls[strategy].append((len(hits), _recall(_ids(hits), truth), ms))
            async with pool.acquire() as conn:
                prepared = await conn.fetch(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE statement LIKE '%<=>%' AND statement NOT LIKE '%pg_prepared%'"
                )
        finally:
            await pool.close()
        result: dict[str, Any] = {"prepared_statement_plans": [dict(r) for r in prepared]}
        for strategy, made in calls.items():
            for label, part in (("calls_1_3", made[:3]), ("calls_4_on", made[3:])):
                if part:
                    result[f"{strategy}_{label}"] = {
                        "hits_mean": round(statistics.mean(c[0] for c in part), 2),
                        "recall_at_10": round(statistics.mean(c[1] for c in part), 3),
                        "p50_ms": round(statistics.median(c[2] for c in part), 2),
                    }
            result[f"{strategy}_ms_per_call"] = [round(c[2], 1) for c in made]
        out[name] = result
    return out


async def _explain(uri: str, loaded: Loaded, query: list[float]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the exact SQL the store sends, replayed with the same
    `SET LOCAL`s in a transaction (captured with asyncpg's query logger)."""
    pool = await create_pool(uri, 1)
    plans: dict[str, Any] = {}
    try:
        logged: list[LoggedQuery] = []
        async with pool.acquire() as conn:
            conn.add_query_logger(logged.append)
        store = Store(pool)
        collection = loaded.collection
        one_pct = Condition(field="group", eq=0)
        wide = Condition.model_validate({"field": "group", "in": list(range(WIDE_GROUPS))})
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "hnsw": lambda: store.vector_search(
                collection, query, TOP_K, None, exact=False, ef_search=DEFAULT_EF
            ),
            "exact": lambda: store.vector_search(
                collection, query, TOP_K, None, exact=True, ef_search=0
            ),
            "candidates": lambda: store.candidates(collection, None, EXACT_THRESHOLD + 1),
            "exact_filter_1pct": lambda: store.vector_search(
                collection, query, TOP_K, one_pct, exact=True, ef_search=0
            ),
            "candidates_filter_1pct": lambda: store.candidates(
                collection, one_pct, EXACT_THRESHOLD + 1
            ),
            "candidates_filter_in_15pct": lambda: store.candidates(
                collection, wide, EXACT_THRESHOLD + 1
            ),
            "hnsw_filter_in_15pct": lambda: store.vector_search(
                collection, query, TOP_K, wide, exact=False, ef_search=DEFAULT_EF * 4
            ),
        }
        for name, call in calls.items():
            logged.clear()
            await call()
            main = [q for q in logged if q.args]
            sets = [q.query for q in logged if q.query.lstrip().upper().startswith("SET")]
            if not main:
                continue
            sql, args = main[-1].query, main[-1].args
            async with pool.acquire() as conn, conn.transaction():
                for statement in sets:
                    await conn.execute(statement)
                rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
            # The query vector's literal (384 numbers) would drown the plan.
            lines = [_LITERAL.sub("'[…]'", row[0]) for row in rows]
            plans[name] = {
                "settings": sets,
                "uses_hnsw": any("chunks_hnsw_" in line for line in lines),
                "plan": lines,
            }
    finally:
        await pool.close()
    return plans
