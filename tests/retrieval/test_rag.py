"""RAG chat through the openai SDK: sources are retrieved, numbered in the prompt, cited back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from tests.conftest import OTHER_KEY
from tests.support.collections import ingest, new_collection
from tests.support.fake_openai import OK_TEXT, FakeOpenAI

FACTS = [
    {
        "external_id": "otters",
        "title": "Sea otters",
        "text": "Sea otters hold hands while they sleep so that they do not drift apart on the current.",
    },
    {
        "external_id": "bees",
        "title": "Honey bees",
        "text": "Honey bees tell each other where flowers are with a waggle dance inside the hive.",
    },
    {
        "external_id": "owls",
        "title": "Owls",
        "text": "Owls can turn their heads about 270 degrees because their necks have fourteen vertebrae.",
    },
]


@pytest.fixture(scope="module")
async def facts(http: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    collection = await new_collection(http, "facts")
    job = await ingest(http, collection["id"], FACTS)
    assert job["status"] == "succeeded"
    yield collection
    await http.delete(f"/v1/collections/{collection['id']}")


async def test_rag_chat_returns_citations(
    client: openai.AsyncOpenAI, fake_provider: FakeOpenAI, facts: dict[str, Any]
) -> None:
    question = f"Why do sea otters hold hands? ({uuid.uuid4().hex})"
    result = await client.chat.completions.create(
        model="fake-ok",
        messages=[{"role": "user", "content": question}],
        extra_body={"rag": {"collections": [facts["name"]], "top_k": 2}},
    )
    assert result.choices[0].message.content == OK_TEXT
    extra = result.model_extra or {}
    citations = extra["citations"]
    assert [c["index"] for c in citations] == [1, 2]
    assert citations[0]["external_id"] == "otters"
    assert citations[0]["title"] == "Sea otters"
    assert "hold hands" in citations[0]["snippet"]
    assert citations[0]["document_id"]
    assert citations[0]["chunk_id"]
    assert citations[0]["score"] > 0
    # the model saw the numbered sources in a system message before the question
    sent = fake_provider.calls[question].body["messages"]
    assert sent[0]["role"] == "system"
    assert "[1] Sea otters" in sent[0]["content"]
    assert sent[-1]["content"] == question


async def test_streamed_rag_sends_citations_before_the_first_token(
    http: httpx.AsyncClient, facts: dict[str, Any]
) -> None:
    body = {
        "model": "fake-ok",
        "stream": True,
        "messages": [{"role": "user", "content": "How do bees find flowers?"}],
        "rag": {"collections": [facts["id"]], "top_k": 1, "mode": "vector"},
    }
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line async for line in response.aiter_lines() if line.startswith("data: {")]
    first = httpx.Response(200, content=lines[0][6:]).json()
    assert first["choices"] == []
    assert first["citations"][0]["external_id"] == "bees"
    second = httpx.Response(200, content=lines[1][6:]).json()
    assert second["choices"][0]["delta"]["content"]


async def test_rag_with_another_tenants_collection_is_404(
    anonymous: httpx.AsyncClient, facts: dict[str, Any]
) -> None:
    response = await anonymous.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {OTHER_KEY}"},
        json={
            "model": "fake-ok",
            "messages": [{"role": "user", "content": "otters?"}],
            "rag": {"collections": [facts["id"]]},
        },
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_rag_options_are_validated(http: httpx.AsyncClient) -> None:
    options: list[dict[str, Any]] = [
        {"collections": []},
        {"collections": ["x"], "top_k": 0},
        {"collections": ["x"], "mode": "magic"},
    ]
    for rag in options:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "fake-ok", "messages": [{"role": "user", "content": "q"}], "rag": rag},
        )
        assert response.status_code == 400, rag
        assert response.json()["error"]["param"].startswith("rag")
