"""A misbehaving upstream (down, slow, cut mid-stream, malformed) → the right structured errors."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from tests.support.fake_openai import CUT_AFTER, FakeOpenAI


def user(text: str | None = None) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text or f"test-{uuid.uuid4().hex}"}]


async def test_provider_down_is_503(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", json={"model": "fake-down", "messages": user()}
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "provider_unavailable"
    assert error["retryable"] is True


async def test_provider_down_streamed_is_503_before_any_event(http: httpx.AsyncClient) -> None:
    body = {"model": "fake-down", "messages": user(), "stream": True}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"


async def test_upstream_503_is_503(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", json={"model": "fake-unavailable", "messages": user()}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert "overloaded" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("stream", "what"),
    [(True, "sent no first token within 1s"), (False, "sent no answer within 1s")],
)
async def test_slow_upstream_times_out(http: httpx.AsyncClient, stream: bool, what: str) -> None:
    """Streamed, the deployment's first_token_timeout bounds the first token; not streamed, its
    response_timeout bounds the whole answer (both 1 s for `fake-slow`, which waits 3 s)."""
    started = time.monotonic()
    response = await http.post(
        "/v1/chat/completions", json={"model": "fake-slow", "messages": user(), "stream": stream}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "provider_timeout"
    assert what in response.json()["error"]["message"]
    assert 0.8 <= elapsed <= 2.0  # the bound is 1 s (±20 %)


async def test_stream_cut_midway_ends_with_partial_error(
    client: openai.AsyncOpenAI, fake_provider: FakeOpenAI
) -> None:
    prompt = f"test-{uuid.uuid4().hex}"
    stream = await client.chat.completions.create(
        model="fake-cut", messages=user(prompt), stream=True
    )
    deltas: list[str] = []

    async def consume() -> None:
        async for chunk in stream:
            deltas.extend(c.delta.content or "" for c in chunk.choices)

    with pytest.raises(openai.APIError) as raised:
        await consume()
    assert deltas == [f"part{i} " for i in range(CUT_AFTER)]
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["code"] == "provider_error"
    assert body["partial"] is True
    assert fake_provider.calls[prompt].chunks_sent == CUT_AFTER


async def test_stream_cut_sse_has_error_event_and_no_done(http: httpx.AsyncClient) -> None:
    body = {"model": "fake-cut", "messages": user(), "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = [line async for line in response.aiter_lines() if line]
    assert '"error"' in lines[-1]
    assert "data: [DONE]" not in lines


async def test_stream_cut_non_streamed_is_502(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", json={"model": "fake-cut", "messages": user()}
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_error"


@pytest.mark.parametrize("model", ["fake-malformed", "fake-html"])
async def test_malformed_upstream_is_502(http: httpx.AsyncClient, model: str) -> None:
    response = await http.post("/v1/chat/completions", json={"model": model, "messages": user()})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_bad_response"


async def test_client_disconnect_closes_upstream(
    http: httpx.AsyncClient, fake_provider: FakeOpenAI
) -> None:
    prompt = f"test-{uuid.uuid4().hex}"
    body = {"model": "fake-trickle", "messages": user(prompt), "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        seen = 0
        async for line in response.aiter_lines():
            seen += line.startswith("data: ")
            if seen >= 3:
                break
    gone = time.monotonic()  # leaving the block early closes the connection
    call = fake_provider.calls[prompt]
    for _ in range(30):
        if call.closed_at is not None:
            break
        await asyncio.sleep(0.1)
    assert call.closed_at is not None, "upstream connection still open 3 s after the client left"
    assert call.closed_at - gone < 1.0


async def test_client_leaving_a_non_streamed_request_closes_upstream(
    http: httpx.AsyncClient, fake_provider: FakeOpenAI
) -> None:
    prompt = f"test-{uuid.uuid4().hex}"
    with pytest.raises(httpx.ReadTimeout):
        await http.post(
            "/v1/chat/completions",
            json={"model": "fake-trickle", "messages": user(prompt)},
            timeout=0.8,
        )
    gone = time.monotonic()
    for _ in range(30):
        call = fake_provider.calls.get(prompt)
        if call is not None and call.closed_at is not None:
            break
        await asyncio.sleep(0.1)
    assert call is not None
    assert call.closed_at is not None, "upstream still open 3 s after the client left"
    assert call.closed_at - gone < 1.0
