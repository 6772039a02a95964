"""Embeddings end to end: openai SDK → gateway → NATS `llm.embed.v1` → inference → model.

The session stack has no embedding model, so this module starts a private stack of its own (the
real local all-MiniLM-L6-v2 loads once for the module) beside a fake OpenAI-compatible embedding
upstream.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import nats
import openai
import pytest
from tests.conftest import model_table
from tests.support.fake_embeddings import DIMENSIONS, FakeEmbeddings, fake_vector
from tests.support.fake_openai import FakeOpenAI
from tests.support.stacks import PrivateStack, private_stack

from switchyard.contracts import EmbedReply, subjects
from switchyard.runtime.embedded import free_port

LOCAL = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def fake_embeddings() -> Iterator[FakeEmbeddings]:
    """The fake embedding upstream."""
    fake = FakeEmbeddings().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def embed_stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_provider: FakeOpenAI,
    fake_embeddings: FakeEmbeddings,
) -> Iterator[PrivateStack]:
    """NATS, gateway and inference with the local embedding model, upstream ones and a chat one."""

    def upstream(behaviour: str, **extra: Any) -> dict[str, Any]:
        return {
            "provider": "openai",
            "base_url": fake_embeddings.base_url,
            "upstream_model": behaviour,
            **extra,
        }

    models: dict[str, Any] = {
        LOCAL: {"kind": "embedding", "provider": "local"},
        "fake-chat": model_table(fake_provider)["fake-ok"],
        "upstream-embed": {"kind": "embedding", **upstream("ok")},
        "upstream-base64": {"kind": "embedding", **upstream("base64")},
        "upstream-short": {"kind": "embedding", **upstream("short")},
        "upstream-down": {"kind": "embedding", **upstream("unavailable")},
        "upstream-fallback": {
            "kind": "embedding",
            "deployments": [
                {
                    "provider": "openai",
                    "base_url": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
                    "connect_timeout": 1,
                },
                upstream("ok", priority=1),
            ],
        },
    }
    with private_stack(
        tmp_path_factory.mktemp("embeddings"),
        models=models,
        inference_env={"SWITCHYARD_INFERENCE_EMBED_MAX_WAIT_MS": "5"},
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
async def sdk(embed_stack: PrivateStack) -> AsyncIterator[openai.AsyncOpenAI]:
    """The openai SDK pointed at the private gateway."""
    key = embed_stack.headers["authorization"].removeprefix("Bearer ")
    async with openai.AsyncOpenAI(
        base_url=f"{embed_stack.base_url}/v1", api_key=key, max_retries=0, timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def raw(embed_stack: PrivateStack) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client for the private gateway."""
    async with httpx.AsyncClient(
        base_url=embed_stack.base_url, headers=embed_stack.headers, timeout=60
    ) as client:
        yield client


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def float32(vector: list[float]) -> bytes:
    """A vector as little-endian float32 bytes."""
    return struct.pack(f"<{len(vector)}f", *vector)


async def test_paraphrases_are_closer_than_unrelated_texts(sdk: openai.AsyncOpenAI) -> None:
    result = await sdk.embeddings.create(
        model=LOCAL,
        input=[
            "A man is playing a guitar.",
            "Someone is strumming an acoustic guitar.",
            "The central bank raised interest rates again.",
        ],
        encoding_format="float",
    )
    guitar, strumming, rates = (item.embedding for item in result.data)
    assert cosine(guitar, strumming) > cosine(guitar, rates) + 0.2
    assert result.model == LOCAL
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0


async def test_list_input_gives_one_unit_vector_per_input_in_order(
    sdk: openai.AsyncOpenAI,
) -> None:
    texts = ["the cat sat on the mat", "quarterly earnings beat estimates", "a recipe for bread"]
    together = await sdk.embeddings.create(model=LOCAL, input=texts, encoding_format="float")
    assert [item.index for item in together.data] == [0, 1, 2]
    for item, text in zip(together.data, texts, strict=True):
        assert len(item.embedding) == 384
        assert math.isclose(sum(x * x for x in item.embedding), 1.0, rel_tol=1e-4)
        alone = await sdk.embeddings.create(model=LOCAL, input=text, encoding_format="float")
        assert cosine(alone.data[0].embedding, item.embedding) > 0.9999
    single = await sdk.embeddings.create(model=LOCAL, input=texts[0], encoding_format="float")
    assert single.usage.prompt_tokens == 6  # "the cat sat on the mat"


async def test_base64_decodes_to_the_float_vector(
    sdk: openai.AsyncOpenAI, raw: httpx.AsyncClient
) -> None:
    text = "Base64 and floats carry the same vector."
    floats = await sdk.embeddings.create(model=LOCAL, input=text, encoding_format="float")
    expected = float32(floats.data[0].embedding)
    # Left to choose, the SDK asks for base64 and decodes it itself; asked for, it hands it over.
    decoded = await sdk.embeddings.create(model=LOCAL, input=text)
    assert float32(decoded.data[0].embedding) == expected
    packed = await sdk.embeddings.create(model=LOCAL, input=text, encoding_format="base64")
    assert base64.b64decode(str(packed.data[0].embedding)) == expected
    response = await raw.post(
        "/v1/embeddings", json={"model": LOCAL, "input": text, "encoding_format": "base64"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["data"][0]["object"] == "embedding"
    assert base64.b64decode(body["data"][0]["embedding"]) == expected


async def test_the_most_inputs_a_request_may_carry(raw: httpx.AsyncClient) -> None:
    texts = [f"item {i}: {['red', 'green', 'blue'][i % 3]} things" for i in range(2048)]
    response = await raw.post(
        "/v1/embeddings", json={"model": LOCAL, "input": texts, "encoding_format": "base64"}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(2048))
    first = await raw.post("/v1/embeddings", json={"model": LOCAL, "input": texts[1000]})
    vector = struct.unpack("<384f", base64.b64decode(data[1000]["embedding"]))
    assert cosine(list(vector), first.json()["data"][0]["embedding"]) > 0.9999  # order kept


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": LOCAL, "input": ""}, 400, "invalid_request", "input"),
        ({"model": LOCAL, "input": []}, 400, "invalid_request", "input"),
        ({"model": LOCAL, "input": ["fine", ""]}, 400, "invalid_request", "input.1"),
        ({"model": LOCAL, "input": 42}, 400, "invalid_request", "input"),
        ({"model": LOCAL, "input": {"text": "x"}}, 400, "invalid_request", "input"),
        ({"model": LOCAL, "input": [1, 2, 3]}, 400, "invalid_request", "input"),
        ({"model": LOCAL, "input": ["x"] * 2049}, 400, "invalid_request", "input"),
        (
            {"model": LOCAL, "input": "x", "encoding_format": "int8"},
            400,
            "invalid_request",
            "encoding_format",
        ),
        ({"model": LOCAL, "input": "x", "dimensions": 0}, 400, "invalid_request", "dimensions"),
        ({"model": LOCAL, "input": "x", "dimensions": 128}, 400, "invalid_request", "dimensions"),
        ({"model": LOCAL, "input": "x", "bogus": 1}, 400, "invalid_request", "bogus"),
        ({"input": "x"}, 400, "invalid_request", "model"),
        ({"model": "no-such-model", "input": "x"}, 404, "model_not_found", "model"),
        ({"model": "fake-chat", "input": "x"}, 400, "invalid_request", "model"),
    ],
)
async def test_invalid_embedding_requests(
    raw: httpx.AsyncClient, body: dict[str, Any], status: int, code: str, param: str | None
) -> None:
    response = await raw.post("/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    if body.get("input") == [1, 2, 3]:
        assert "token-id" in error["message"]


async def test_sdk_sees_errors_as_exceptions(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as chat_model:
        await sdk.embeddings.create(model="fake-chat", input="hello")
    assert "POST /v1/chat/completions" in str(chat_model.value)
    with pytest.raises(openai.NotFoundError):
        await sdk.embeddings.create(model="nope", input="hello")


async def test_chat_with_an_embedding_model_is_refused(raw: httpx.AsyncClient) -> None:
    response = await raw.post(
        "/v1/chat/completions",
        json={"model": LOCAL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert "POST /v1/embeddings" in response.json()["error"]["message"]


async def test_auth_is_required(embed_stack: PrivateStack) -> None:
    async with httpx.AsyncClient(base_url=embed_stack.base_url) as anonymous:
        response = await anonymous.post("/v1/embeddings", json={"model": LOCAL, "input": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_deadline_is_enforced(raw: httpx.AsyncClient) -> None:
    response = await raw.post(
        "/v1/embeddings",
        json={"model": LOCAL, "input": "too late"},
        headers={"x-switchyard-timeout": "0.001"},
    )
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "deadline_exceeded"


async def test_upstream_embeddings(
    sdk: openai.AsyncOpenAI, fake_embeddings: FakeEmbeddings
) -> None:
    texts = ["one", "two words", "three more words"]
    result = await sdk.embeddings.create(
        model="upstream-embed", input=texts, encoding_format="float", user="u-1"
    )
    assert [item.embedding for item in result.data] == [fake_vector(t) for t in texts]
    assert result.usage.prompt_tokens == 6
    assert result.model == "upstream-embed"
    call = fake_embeddings.calls[-1]
    assert call["model"] == "ok"  # the deployment's upstream name
    assert call["input"] == texts
    assert call["user"] == "u-1"
    shorter = await sdk.embeddings.create(
        model="upstream-embed", input="x", dimensions=4, encoding_format="float"
    )
    assert len(shorter.data[0].embedding) == 4  # `dimensions` is the upstream's to honour
    packed = await sdk.embeddings.create(model="upstream-base64", input=texts[:1])
    assert float32(packed.data[0].embedding) == float32(fake_vector(texts[0]))
    assert len(packed.data[0].embedding) == DIMENSIONS


async def test_upstream_failures_are_structured(raw: httpx.AsyncClient) -> None:
    down = await raw.post("/v1/embeddings", json={"model": "upstream-down", "input": "x"})
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "provider_unavailable"
    short = await raw.post("/v1/embeddings", json={"model": "upstream-short", "input": ["a", "b"]})
    assert short.status_code == 502
    assert short.json()["error"]["code"] == "provider_bad_response"
    fallback = await raw.post("/v1/embeddings", json={"model": "upstream-fallback", "input": "x"})
    assert fallback.status_code == 200, fallback.text
    assert fallback.json()["data"][0]["embedding"] == fake_vector("x")


async def test_a_malformed_message_gets_an_error_reply(embed_stack: PrivateStack) -> None:
    nc = await nats.connect(embed_stack.nats.url)
    try:
        msg = await nc.request(subjects.EMBED, b'{"not": "an embed request"}', timeout=10)
    finally:
        await nc.close()
    reply = EmbedReply.model_validate_json(msg.data)
    assert reply.error is not None
    assert reply.error.code == "invalid_request"
    assert reply.data == []


async def test_embedding_models_are_listed(raw: httpx.AsyncClient) -> None:
    response = await raw.get("/v1/models")
    assert response.status_code == 200
    assert LOCAL in {card["id"] for card in response.json()["data"]}
