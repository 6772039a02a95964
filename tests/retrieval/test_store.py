"""The store on its own, against the real PostgreSQL: strategies must not leak into each other."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest

from switchyard.contracts.retrieval import CollectionCreate, Condition
from switchyard.retrieval.migrate import migrate
from switchyard.retrieval.store import CollectionRow, NewChunk, Store, create_pool
from switchyard.runtime.embedded import PostgresServer


def unit(rng: random.Random, dimension: int = 384) -> list[float]:
    values = [rng.gauss(0, 1) for _ in range(dimension)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


@pytest.fixture(scope="module")
async def store(postgres: PostgresServer) -> AsyncIterator[Store]:
    pool = await create_pool(postgres.uri, 1)  # one connection: every call reuses its statements
    await migrate(pool)
    yield Store(pool)
    await pool.close()


@pytest.fixture(scope="module")
async def filled(store: Store) -> AsyncIterator[CollectionRow]:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    created = await store.create_collection(
        tenant, CollectionCreate(name="strategies"), "test-model", 384
    )
    collection = await store.collection(tenant, created.id)
    rng = random.Random(7)
    for doc in range(60):
        await store.replace_document(
            collection,
            f"doc-{doc}",
            None,
            None,
            {"group": doc % 20},
            f"hash-{doc}",
            [NewChunk(k, f"chunk {doc}.{k}", None, unit(rng)) for k in range(5)],
        )
    yield collection
    await store.delete_collection(tenant, created.id)


async def test_exact_and_hnsw_calls_alternate_without_mixing_plans(
    store: Store, filled: CollectionRow
) -> None:
    rng = random.Random(11)
    selective = Condition(field="group", eq=3)  # 15 of 300 chunks
    for _ in range(8):  # past PostgreSQL's five custom plans before it may switch to a generic one
        query = unit(rng)
        # The same SQL text for both strategies: HNSW (a narrow ef, so the selective filter leaves
        # almost nothing) and exact (which must fill top_k from the 15 rows that pass).
        approximate = await store.vector_search(
            filled, query, 10, selective, exact=False, ef_search=10
        )
        exact = await store.vector_search(filled, query, 10, selective, exact=True, ef_search=0)
        assert len(exact) == 10, len(approximate)
        assert {hit.metadata["group"] for hit in exact} == {3}
        scores = [hit.score for hit in exact]
        assert scores == sorted(scores, reverse=True)


async def test_candidate_counts(store: Store, filled: CollectionRow) -> None:
    assert await store.candidates(filled, None, 1000) == 300
    assert await store.candidates(filled, None, 50) == 50
    assert await store.candidates(filled, Condition(field="group", eq=3), 1000) == 15
