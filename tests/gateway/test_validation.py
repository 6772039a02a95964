"""Bad input gets a clear, structured 4xx error — never a stack trace, a 500 or a hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fake-ok", "messages": USER, "temperature": 5}, "temperature"),
        ({"model": "fake-ok", "messages": USER, "top_p": 0}, "top_p"),
        ({"model": "fake-ok", "messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"model": "fake-ok", "messages": USER, "max_tokens": "many"}, "max_tokens"),
        ({"model": "fake-ok", "messages": USER, "presence_penalty": -3}, "presence_penalty"),
        ({"model": "fake-ok", "messages": USER, "n": 2}, "n"),
        ({"model": "fake-ok", "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "fake-ok", "messages": []}, "messages"),
        ({"model": "fake-ok", "messages": "hello"}, "messages"),
        ({"model": "fake-ok", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0"),
        ({"model": "fake-ok", "messages": [{"role": "user"}]}, "messages.0.content"),
        ({"model": "fake-ok", "messages": [{"role": "assistant"}]}, "messages.0"),
        ({"model": "fake-ok", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "fake-ok", "messages": USER, "bogus_field": 1}, "bogus_field"),
        ({"messages": USER}, "model"),
        ({"model": "", "messages": USER}, "model"),
    ],
)
async def test_invalid_chat_parameters(
    http: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    assert response.headers["x-request-id"]


async def test_invalid_json_body(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions",
        content=b'{"model": "x", ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "JSON" in response.json()["error"]["message"]


async def test_body_not_an_object(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/chat/completions", json=[1, 2, 3])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


async def test_completion_prompt_list_must_hold_one_string(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/completions", json={"model": "fake-ok", "prompt": ["a", "b"]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"


async def test_bad_timeout_header(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "fake-ok", "messages": USER},
        headers={"x-switchyard-timeout": "-1"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-switchyard-timeout"


async def test_body_too_large(http: httpx.AsyncClient) -> None:
    huge = "x" * (5 * 1024 * 1024)
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "fake-ok", "messages": [{"role": "user", "content": huge}]},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_body_too_large_without_content_length(http: httpx.AsyncClient) -> None:
    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model": "fake-ok", "messages": [{"role": "user", "content": "'
        yield b"x" * (4 * 1024 * 1024)
        yield b'"}]}'

    response = await http.post(
        "/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic abc", "Bearer"])
async def test_api_key_required(anonymous: httpx.AsyncClient, header: str | None) -> None:
    headers = {"authorization": header} if header is not None else {}
    response = await anonymous.post(
        "/v1/chat/completions", json={"model": "fake-ok", "messages": USER}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        await client.chat.completions.create(model="no-such-model", messages=USER)  # type: ignore[arg-type]
    assert raised.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="no-such-model", messages=USER, stream=True)  # type: ignore[arg-type]


async def test_sdk_sees_bad_request(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="fake-ok", messages=USER, temperature=5)  # type: ignore[arg-type]
    assert raised.value.code == "invalid_request"
    assert raised.value.param == "temperature"


async def test_unknown_route_and_method(http: httpx.AsyncClient) -> None:
    missing = await http.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await http.get("/v1/chat/completions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "invalid_request"


async def test_openapi_docs(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert "/v1/chat/completions" in spec["paths"]
    assert (await http.get("/docs")).status_code == 200
