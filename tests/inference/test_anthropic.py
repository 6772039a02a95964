"""The Anthropic provider adapter against a fake Messages API over real HTTP, then end to end."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.support.fake_anthropic import (
    CUT_AFTER,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    RETRY_AFTER,
    TEXT,
    TOOL_ARGUMENT_PIECES,
    TOOL_PREAMBLE,
    FakeAnthropic,
)
from tests.support.stacks import KEY, PrivateStack, private_stack

from switchyard.contracts import (
    ChatCompletionRequest,
    CompletionRequest,
    Delta,
    ErrorCode,
    SwitchyardError,
)
from switchyard.inference.config import Deployment
from switchyard.inference.providers.anthropic import AnthropicProvider, chat_body
from switchyard.inference.providers.base import Finish, ProviderEvent
from switchyard.runtime.embedded import free_port

KEY_ENV = "FAKE_ANTHROPIC_KEY"
UPSTREAM_KEY = "sk-ant-fake-upstream-key"


def marker() -> str:
    """A unique user message, so the fake's record of this test's call can be found."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    """The scripted Messages API."""
    server = FakeAnthropic().start()
    yield server
    server.stop()


# Module-scoped: building an httpx client reads certificate files, which the per-test
# blocking-call guard would refuse inside the test's event loop.
@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[AnthropicProvider]:
    """The adapter under test."""
    adapter = AnthropicProvider()
    yield adapter
    await adapter.aclose()


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The upstream key, in the environment variable the deployments name."""
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)


def deployment(fake: FakeAnthropic, behaviour: str, **overrides: Any) -> Deployment:
    """A deployment of the fake whose upstream model name picks the fake's behaviour."""
    return Deployment(
        provider="anthropic",
        base_url=fake.base_url,
        upstream_model=behaviour,
        api_key_env=KEY_ENV,
        **overrides,
    )


def chat(content: str, **fields: Any) -> ChatCompletionRequest:
    """A one-message chat request to the public model `claude-fake`."""
    return ChatCompletionRequest.model_validate(
        {"model": "claude-fake", "messages": [{"role": "user", "content": content}], **fields}
    )


async def collect(
    stream: AsyncGenerator[ProviderEvent, None], into: list[ProviderEvent] | None = None
) -> list[ProviderEvent]:
    """Every event of a provider stream, appended to `into` as they come (kept if it fails)."""
    events = [] if into is None else into
    async for event in stream:
        events.append(event)
    return events


def deltas(events: list[ProviderEvent]) -> list[Delta]:
    """The deltas of a stream, after checking it ends with exactly one `Finish`."""
    assert isinstance(events[-1], Finish)
    body = events[:-1]
    assert all(isinstance(event, Delta) for event in body)
    return [event for event in body if isinstance(event, Delta)]


async def test_streams_text_with_usage(fake: FakeAnthropic, provider: AnthropicProvider) -> None:
    prompt = marker()
    events = await collect(provider.chat(chat(prompt), deployment(fake, "text")))
    pieces = [d.content for d in deltas(events) if d.content]
    assert "".join(pieces) == TEXT
    assert len(pieces) > 1  # relayed as it streams, not buffered
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.finish_reason == "stop"
    assert finish.usage.prompt_tokens == INPUT_TOKENS
    assert finish.usage.completion_tokens == OUTPUT_TOKENS
    assert finish.usage.total_tokens == INPUT_TOKENS + OUTPUT_TOKENS
    call = fake.calls[prompt]
    assert call.path == "/v1/messages"
    assert call.headers["x-api-key"] == UPSTREAM_KEY
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["content-type"] == "application/json"
    assert call.body["model"] == "text"
    assert call.body["stream"] is True


async def test_streams_tool_call(fake: FakeAnthropic, provider: AnthropicProvider) -> None:
    request = chat(
        marker(),
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    events = await collect(provider.chat(request, deployment(fake, "tool")))
    text = "".join(d.content for d in deltas(events) if d.content)
    assert text == TOOL_PREAMBLE
    pieces = [piece for d in deltas(events) for piece in d.tool_calls or ()]
    # The tool block is Anthropic's block 1, but it is the answer's first tool call: index 0.
    assert {piece.index for piece in pieces} == {0}
    assert pieces[0].id == "toolu_fake_1"
    assert pieces[0].type == "function"
    functions = [piece.function or {} for piece in pieces]
    assert "".join(f.get("name", "") for f in functions) == "get_weather"
    arguments = "".join(f.get("arguments", "") for f in functions)
    assert arguments == "".join(TOOL_ARGUMENT_PIECES)
    assert json.loads(arguments) == {"city": "Paris"}
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.finish_reason == "tool_calls"


async def test_request_mapping(fake: FakeAnthropic, provider: AnthropicProvider) -> None:
    prompt = marker()
    image = "https://example.com/map.png"
    request = ChatCompletionRequest.model_validate(
        {
            "model": "claude-fake",
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": "Answer in French."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather and time?"},
                        {"type": "image_url", "image_url": {"url": image}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_a", "content": "18 degrees"},
                {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
                {"role": "user", "content": prompt},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Current weather of a city.",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                },
                {"type": "function", "function": {"name": "get_time"}},
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
    )
    await collect(provider.chat(request, deployment(fake, "text", default_max_tokens=77)))
    body = fake.calls[prompt].body
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert body["max_tokens"] == 77  # required by Anthropic: the deployment's default
    assert body["temperature"] == 0.5
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather and time?"},
                {"type": "image", "source": {"type": "url", "url": image}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_a",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "18 degrees"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "noon"},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": prompt}]},
    ]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
        {
            "name": "get_time",
            "description": "",
            "input_schema": {"type": "object", "properties": {}},
        },
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", None)],
)
def test_tool_choice_mapping(choice: str, expected: dict[str, str] | None) -> None:
    tools = [{"type": "function", "function": {"name": "get_time"}}]
    body = chat_body(
        chat("hi", tools=tools, tool_choice=choice),
        Deployment(provider="anthropic", upstream_model="claude"),
    )
    assert body.get("tool_choice") == expected
    assert ("tools" in body) == (expected is not None)  # "none" offers no tools at all


def test_client_token_limit_wins() -> None:
    body = chat_body(chat("hi", max_completion_tokens=5), Deployment(provider="anthropic"))
    assert body["max_tokens"] == 5
    assert body["model"] == "claude-fake"  # no upstream_model: the public name


async def test_text_completion_is_one_user_turn(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    prompt = marker()
    request = CompletionRequest(model="claude-fake", prompt=prompt, max_tokens=12)
    events = await collect(provider.complete(request, deployment(fake, "text")))
    assert "".join(d.content or "" for d in deltas(events)) == TEXT
    body = fake.calls[prompt].body
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    assert body["max_tokens"] == 12
    assert "system" not in body


async def test_overloaded_is_provider_unavailable(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    with pytest.raises(SwitchyardError) as caught:
        await collect(provider.chat(chat(marker()), deployment(fake, "overloaded")))
    assert caught.value.code == ErrorCode.PROVIDER_UNAVAILABLE
    assert "Overloaded" in caught.value.body.message
    assert caught.value.body.details["upstream_status"] == 529


async def test_rate_limit_carries_retry_after(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    with pytest.raises(SwitchyardError) as caught:
        await collect(provider.chat(chat(marker()), deployment(fake, "rate_limited")))
    assert caught.value.code == ErrorCode.UPSTREAM_RATE_LIMITED
    assert caught.value.body.details["retry_after"] == RETRY_AFTER


async def test_cut_stream_is_provider_error(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    received: list[ProviderEvent] = []
    with pytest.raises(SwitchyardError) as caught:
        await collect(provider.chat(chat(marker()), deployment(fake, "cut")), received)
    assert caught.value.code == ErrorCode.PROVIDER_ERROR
    assert len(received) == CUT_AFTER  # what arrived before the cut was relayed
    assert not any(isinstance(event, Finish) for event in received)


async def test_error_event_mid_stream(fake: FakeAnthropic, provider: AnthropicProvider) -> None:
    received: list[ProviderEvent] = []
    with pytest.raises(SwitchyardError) as caught:
        await collect(provider.chat(chat(marker()), deployment(fake, "stream_error")), received)
    assert caught.value.code == ErrorCode.PROVIDER_UNAVAILABLE  # an `overloaded_error` event
    assert received
    assert not any(isinstance(event, Finish) for event in received)


async def test_unreachable_upstream(provider: AnthropicProvider) -> None:
    down = Deployment(
        provider="anthropic",
        base_url=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        connect_timeout=1.0,
    )
    with pytest.raises(SwitchyardError) as caught:
        await collect(provider.chat(chat(marker()), down))
    assert caught.value.code == ErrorCode.PROVIDER_UNAVAILABLE


@pytest.fixture(scope="module")
def anthropic_stack(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropic
) -> Iterator[PrivateStack]:
    """NATS, gateway and inference, with one model served by the fake Messages API."""
    models = {
        "claude-fake": {
            "provider": "anthropic",
            "base_url": fake.base_url,
            "upstream_model": "text",
            "api_key_env": KEY_ENV,
        }
    }
    workdir: Path = tmp_path_factory.mktemp("anthropic-stack")
    with private_stack(workdir, models=models, inference_env={KEY_ENV: UPSTREAM_KEY}) as stack:
        yield stack


@pytest.fixture(scope="module")
async def sdk(anthropic_stack: PrivateStack) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI SDK pointed at the private stack's gateway."""
    async with openai.AsyncOpenAI(
        base_url=f"{anthropic_stack.base_url}/v1", api_key=KEY, max_retries=0, timeout=30
    ) as client:
        yield client


async def test_end_to_end_through_gateway(sdk: openai.AsyncOpenAI, fake: FakeAnthropic) -> None:
    prompt = marker()
    stream = await sdk.chat.completions.create(
        model="claude-fake",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish = None
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(pieces) == TEXT
    assert len(pieces) > 1
    assert finish == "stop"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (INPUT_TOKENS, OUTPUT_TOKENS)
    call = fake.calls[prompt]
    assert call.headers["x-api-key"] == UPSTREAM_KEY
    assert call.body["model"] == "text"
