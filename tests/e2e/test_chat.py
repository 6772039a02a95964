"""Chat and text completions end to end: openai SDK → gateway → NATS → inference → provider."""

from __future__ import annotations

import uuid

import httpx
import openai
from openai.types.chat import ChatCompletionMessageFunctionToolCall, ChatCompletionToolParam
from tests.support.fake_openai import OK_TEXT, FakeOpenAI


def marker() -> str:
    """A unique user message, so the fake's record of this test's call can be found."""
    return f"test-{uuid.uuid4().hex}"


async def test_chat_non_streamed(client: openai.AsyncOpenAI, fake_provider: FakeOpenAI) -> None:
    prompt = marker()
    result = await client.chat.completions.create(
        model="fake-ok", messages=[{"role": "user", "content": prompt}], temperature=0.5
    )
    assert result.choices[0].message.content == OK_TEXT
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].finish_reason == "stop"
    assert result.model == "fake-ok"
    assert result.usage is not None
    assert result.usage.prompt_tokens == 7
    assert result.usage.completion_tokens == len(OK_TEXT.split(" "))
    call = fake_provider.calls[prompt]
    assert call.path == "/v1/chat/completions"
    assert call.model == "ok"  # the deployment's upstream name, not the public one
    assert call.body["temperature"] == 0.5
    # Not streamed by the client, so not streamed upstream: the answer came as one JSON body.
    assert "stream" not in call.body
    assert "stream_options" not in call.body


async def test_chat_streamed(client: openai.AsyncOpenAI, fake_provider: FakeOpenAI) -> None:
    prompt = marker()
    stream = await client.chat.completions.create(
        model="fake-ok",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas: list[str] = []
    finish = None
    usage = None
    roles = []
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            roles.append(choice.delta.role)
            if choice.delta.content:
                deltas.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(deltas) == OK_TEXT
    assert len(deltas) == len(OK_TEXT.split(" "))  # relayed chunk by chunk, not buffered
    assert roles[0] == "assistant"
    assert finish == "stop"
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sent = fake_provider.calls[prompt].body
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_stream_ends_with_done_marker(http: httpx.AsyncClient) -> None:
    body = {"model": "fake-ok", "messages": [{"role": "user", "content": marker()}], "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        lines = [line async for line in response.aiter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


WEATHER_TOOL: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


async def test_tool_calls_pass_through(client: openai.AsyncOpenAI) -> None:
    """A whole answer's tool call (upstream not streamed) comes back as the provider made it."""
    result = await client.chat.completions.create(
        model="fake-tools", messages=[{"role": "user", "content": marker()}], tools=WEATHER_TOOL
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id == "call_1"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Paris"}'


async def test_streamed_tool_calls_pass_through(client: openai.AsyncOpenAI) -> None:
    """A streamed tool call arrives in pieces, by index, and adds up to the whole call."""
    stream = await client.chat.completions.create(
        model="fake-tools",
        messages=[{"role": "user", "content": marker()}],
        tools=WEATHER_TOOL,
        stream=True,
    )
    ids, names, arguments, finish = [], [], "", None
    async for chunk in stream:
        for choice in chunk.choices:
            for piece in choice.delta.tool_calls or []:
                assert piece.index == 0
                ids += [piece.id] if piece.id else []
                if piece.function is not None:
                    names += [piece.function.name] if piece.function.name else []
                    arguments += piece.function.arguments or ""
            finish = choice.finish_reason or finish
    assert (ids, names, arguments, finish) == (
        ["call_1"],
        ["get_weather"],
        '{"city": "Paris"}',
        "tool_calls",
    )


async def test_completions(client: openai.AsyncOpenAI, fake_provider: FakeOpenAI) -> None:
    prompt = marker()
    result = await client.completions.create(model="fake-ok", prompt=prompt, max_tokens=20)
    assert result.object == "text_completion"
    assert result.choices[0].text == OK_TEXT
    assert fake_provider.calls[prompt].path == "/v1/completions"
    assert fake_provider.calls[prompt].body["max_tokens"] == 20

    stream = await client.completions.create(model="fake-ok", prompt=marker(), stream=True)
    text = "".join([c.choices[0].text async for c in stream if c.choices])
    assert text == OK_TEXT


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    ids = {m.id for m in models.data}
    assert {"smollm2-135m-instruct", "fake-ok", "fake-down"} <= ids


async def test_every_response_has_a_request_id(http: httpx.AsyncClient) -> None:
    ok = await http.get("/v1/models")
    bad = await http.post("/v1/chat/completions", json={"model": "fake-ok"})
    unauth = await http.get("/v1/models", headers={"authorization": "Bearer nope"})
    ids = {r.headers.get("x-request-id") for r in (ok, bad, unauth)}
    assert None not in ids
    assert len(ids) == 3


async def test_tool_results_reach_the_provider(
    client: openai.AsyncOpenAI, fake_provider: FakeOpenAI
) -> None:
    prompt = marker()
    await client.chat.completions.create(
        model="fake-ok",
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_9", "content": "18 C, sunny"},
            {"role": "user", "content": prompt},
        ],
        tool_choice="auto",
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ],
    )
    sent = fake_provider.calls[prompt].body
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert sent["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_9",
        "content": "18 C, sunny",
    }
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "auto"
