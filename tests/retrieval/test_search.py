"""Search over a small written corpus: vector finds paraphrases, full-text finds rare terms,
hybrid does at least as well as the better of the two; filters; tenant isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.conftest import OTHER_KEY
from tests.support.collections import ingest, new_collection, search

CORPUS = [
    (
        "sourdough",
        "Baking sourdough bread",
        "A sourdough loaf rises thanks to a starter: a culture of wild yeast and lactic acid "
        "bacteria kept alive with flour and water. Feed the starter the day before baking, mix the "
        "dough, let it ferment slowly, shape it and bake it in a very hot Dutch oven.",
    ),
    (
        "photosynthesis",
        "How photosynthesis works",
        "Green plants capture light with chlorophyll in their leaves. The energy of the light splits "
        "water, releases oxygen and builds sugar from carbon dioxide drawn from the air.",
    ),
    (
        "capacitor",
        "Flux capacitor fault codes",
        "Fault ZX-4471 means the flux capacitor lost synchronisation with the temporal field "
        "regulator. Reset the regulator, then recalibrate the capacitor before the next jump.",
    ),
    (
        "probes",
        "Kubernetes probes",
        "A readiness probe tells the cluster when a pod may receive traffic; a liveness probe tells "
        "it when to restart a container that hangs. gRPC health checks can serve both.",
    ),
    (
        "volcano",
        "Why volcanoes erupt",
        "Magma rises because it is lighter than the surrounding rock. Dissolved gases expand as the "
        "pressure drops, and when they cannot escape the volcano erupts explosively.",
    ),
    (
        "chess",
        "The Sicilian Defence",
        "Black answers 1.e4 with c5, fighting for the centre from the side. The Najdorf variation, "
        "played by Fischer and Kasparov, is its sharpest line.",
    ),
    (
        "hashing",
        "Storing passwords",
        "Never store passwords in plain text. Hash them with a slow, salted algorithm such as "
        "argon2id or bcrypt so that a stolen database resists brute force.",
    ),
    (
        "tides",
        "Life in tide pools",
        "Tide pools hold sea anemones, hermit crabs and starfish that survive hours without the "
        "ocean. Waves and the moon's pull refill them twice a day.",
    ),
]

# query → the document that answers it; paraphrases (no shared rare words) and exact rare terms
LABELLED = {
    "How do leaves turn sunshine into food?": "photosynthesis",
    "What makes a loaf rise when no commercial yeast is used?": "sourdough",
    "Why does molten rock come out of mountains?": "volcano",
    "ZX-4471": "capacitor",
    "Najdorf": "chess",
    "argon2id": "hashing",
    "small sea animals living in rock pools at low water": "tides",
    "restart a hung container automatically": "probes",
}


@pytest.fixture(scope="module")
async def corpus(http: httpx.AsyncClient) -> AsyncIterator[str]:
    collection = await new_collection(http, "corpus")
    documents = [
        {"external_id": key, "title": title, "text": text, "metadata": {"topic": key}}
        for key, title, text in CORPUS
    ]
    job = await ingest(http, collection["id"], documents)
    assert job["status"] == "succeeded", job
    assert job["chunks_done"] == job["chunks_total"] >= len(CORPUS)
    yield collection["id"]
    await http.delete(f"/v1/collections/{collection['id']}")


async def top(http: httpx.AsyncClient, collection: str, query: str, mode: str) -> list[str]:
    return [hit["external_id"] for hit in await search(http, collection, query, mode=mode, top_k=3)]


async def test_paraphrase_found_by_vector_search(http: httpx.AsyncClient, corpus: str) -> None:
    assert (await top(http, corpus, "How do leaves turn sunshine into food?", "vector"))[0] == (
        "photosynthesis"
    )
    assert (await top(http, corpus, "Why does molten rock come out of mountains?", "vector"))[
        0
    ] == ("volcano")


async def test_rare_term_found_by_fulltext(http: httpx.AsyncClient, corpus: str) -> None:
    hits = await search(http, corpus, "ZX-4471", mode="fulltext")
    assert [h["external_id"] for h in hits] == ["capacitor"]
    assert hits[0]["title"] == "Flux capacitor fault codes"
    assert "ZX-4471" in hits[0]["text"]
    assert (await top(http, corpus, "Najdorf", "fulltext")) == ["chess"]


def reciprocal_rank(ranked: list[str], answer: str) -> float:
    return 1.0 / (ranked.index(answer) + 1) if answer in ranked else 0.0


async def test_hybrid_at_least_as_good_as_the_better_mode(
    http: httpx.AsyncClient, corpus: str
) -> None:
    scores: dict[str, float] = {}
    for mode in ("vector", "fulltext", "hybrid"):
        ranks = [
            reciprocal_rank(await top(http, corpus, query, mode), answer)
            for query, answer in LABELLED.items()
        ]
        scores[mode] = sum(ranks) / len(ranks)
    assert scores["hybrid"] >= max(scores["vector"], scores["fulltext"]), scores
    assert scores["hybrid"] >= 0.8, scores


async def test_hits_carry_scores_text_and_metadata(http: httpx.AsyncClient, corpus: str) -> None:
    hits = await search(http, corpus, "password storage", mode="hybrid", top_k=2)
    assert len(hits) == 2
    assert hits[0]["score"] >= hits[1]["score"]
    assert hits[0]["metadata"]["topic"] == hits[0]["external_id"]
    for key in ("chunk_id", "document_id", "text", "title", "position"):
        assert key in hits[0]


@pytest.fixture(scope="module")
async def large(http: httpx.AsyncClient) -> AsyncIterator[str]:
    """300 one-chunk documents: more than the test stack's exact-search threshold (50)."""
    collection = await new_collection(http, "filters")
    colors = ["red", "green", "blue"]
    documents = [
        {
            "external_id": f"doc-{i}",
            "text": f"Note {i} about {colors[i % 3]} widgets, batch {i % 7}, shipped to depot {i % 11}.",
            "metadata": {
                "group": i % 100,
                "color": colors[i % 3],
                "year": 2000 + i % 25,
                "shipped": f"2024-01-{1 + i % 28:02d}",
            },
        }
        for i in range(300)
    ]
    job = await ingest(http, collection["id"], documents)
    assert job["status"] == "succeeded", job
    yield collection["id"]
    await http.delete(f"/v1/collections/{collection['id']}")


async def filtered(
    http: httpx.AsyncClient, collection: str, filters: dict[str, Any], top_k: int = 3
) -> tuple[list[dict[str, Any]], str]:
    response = await http.post(
        f"/v1/collections/{collection}/search",
        json={
            "query": "widgets shipped to a depot",
            "mode": "vector",
            "top_k": top_k,
            "filters": filters,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["data"], body["strategy"]


async def test_selective_filter_still_returns_top_k(http: httpx.AsyncClient, large: str) -> None:
    hits, strategy = await filtered(http, large, {"field": "group", "eq": 7})  # 3 rows of 300: 1 %
    assert len(hits) == 3
    assert {h["metadata"]["group"] for h in hits} == {7}
    assert strategy.startswith("exact")
    unfiltered, strategy = await filtered(
        http, large, {"field": "color", "in": ["red", "green", "blue"]}, 10
    )
    assert len(unfiltered) == 10
    assert strategy.startswith("hnsw")  # 300 candidates: over the threshold


async def test_filter_operators(http: httpx.AsyncClient, large: str) -> None:
    hits, _ = await filtered(
        http,
        large,
        {
            "and": [
                {"field": "color", "in": ["red", "blue"]},
                {"field": "year", "gte": 2020, "lt": 2023},
            ]
        },
        top_k=10,
    )
    assert len(hits) == 10
    for hit in hits:
        assert hit["metadata"]["color"] in ("red", "blue")
        assert 2020 <= hit["metadata"]["year"] < 2023
    hits, _ = await filtered(
        http,
        large,
        {"or": [{"field": "group", "eq": 1}, {"field": "shipped", "gte": "2024-01-28T00:00:00"}]},
        top_k=50,
    )
    assert hits
    for hit in hits:
        assert hit["metadata"]["group"] == 1 or hit["metadata"]["shipped"] == "2024-01-28"


async def test_bad_filters_are_400(http: httpx.AsyncClient, large: str) -> None:
    filters: list[dict[str, Any]] = [
        {"field": "x"},
        {"field": "bad field!", "eq": 1},
        {"and": []},
        {"field": "year", "gte": "not a date"},
    ]
    for bad in filters:
        response = await http.post(
            f"/v1/collections/{large}/search", json={"query": "q", "filters": bad}
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"]["code"] == "invalid_request"


async def test_tenants_are_isolated(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient, corpus: str
) -> None:
    other = {"authorization": f"Bearer {OTHER_KEY}"}
    for method, path, body in [
        ("GET", f"/v1/collections/{corpus}", None),
        ("POST", f"/v1/collections/{corpus}/search", {"query": "bread"}),
        ("GET", f"/v1/collections/{corpus}/documents", None),
        ("POST", f"/v1/collections/{corpus}/documents", {"documents": [{"text": "x"}]}),
        ("DELETE", f"/v1/collections/{corpus}/documents/sourdough", None),
        ("DELETE", f"/v1/collections/{corpus}", None),
    ]:
        response = await anonymous.request(method, path, json=body, headers=other)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    listed = (await anonymous.get("/v1/collections", headers=other)).json()["data"]
    assert corpus not in {c["id"] for c in listed}
    mine = await http.get(f"/v1/collections/{corpus}")
    assert mine.status_code == 200  # still there after the other tenant's attempts
    assert mine.json()["document_count"] == len(CORPUS)
