"""Anthropic's Messages API (`POST /v1/messages`).

OpenAI-shaped requests are mapped to Messages requests (system prompt at the top level, tool calls
and results as content blocks), and the Messages event stream is parsed incrementally back into
OpenAI-shaped deltas. Parameters Anthropic has no counterpart for (penalties, seed, logit_bias,
response_format) are not sent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from switchyard.contracts import (
    ChatCompletionRequest,
    CompletionRequest,
    Delta,
    ErrorCode,
    SwitchyardError,
    ToolCallDelta,
)
from switchyard.contracts.openai import (
    AssistantMessage,
    ChatMessage,
    Content,
    FinishReason,
    ImagePart,
    SystemMessage,
    ToolMessage,
)
from switchyard.inference.config import Deployment
from switchyard.inference.providers.base import Finish, ProviderEvent, usage_of
from switchyard.inference.providers.client import Client, HTTPError
from switchyard.inference.providers.http import require_event_stream, transport_error

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"

_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_REQUEST,
    408: ErrorCode.PROVIDER_TIMEOUT,
    413: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.UPSTREAM_RATE_LIMITED,
    503: ErrorCode.PROVIDER_UNAVAILABLE,
    504: ErrorCode.PROVIDER_TIMEOUT,
    529: ErrorCode.PROVIDER_UNAVAILABLE,  # Anthropic's "overloaded"
}

# Error types Anthropic may send inside a stream that has already started.
_STREAM_ERROR_CODES: dict[str, ErrorCode] = {
    "overloaded_error": ErrorCode.PROVIDER_UNAVAILABLE,
    "rate_limit_error": ErrorCode.UPSTREAM_RATE_LIMITED,
}

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

Json = dict[str, Any]


def _upstream_error(raw: Any) -> tuple[str | None, str | None]:
    """(type, message) of an Anthropic error object `{"type": ..., "message": ...}`."""
    if not isinstance(raw, dict):
        return None, None
    kind, message = raw.get("type"), raw.get("message")
    return (
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) else None,
    )


def _status_error(status: int, body: bytes, retry_after: str | None) -> SwitchyardError:
    details: Json = {"upstream_status": status}
    message = f"upstream answered HTTP {status}"
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    kind, text = _upstream_error(parsed.get("error") if isinstance(parsed, dict) else None)
    if text:
        message = f"{message}: {text}"
    if kind:
        details["upstream_type"] = kind
    if retry_after is not None:
        details["retry_after"] = retry_after
    return SwitchyardError(_STATUS_CODES.get(status, ErrorCode.PROVIDER_ERROR), message, **details)


def _image_block(part: ImagePart) -> Json:
    url = part.image_url.url
    # OpenAI clients inline images as data URLs; Anthropic wants those as base64 sources.
    if url.startswith("data:") and ";base64," in url:
        media_type, _, data = url[5:].partition(";base64,")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Content | None) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [
        _image_block(part) if isinstance(part, ImagePart) else {"type": "text", "text": part.text}
        for part in content
    ]


def _plain_text(content: Content, role: str) -> str:
    if isinstance(content, str):
        return content
    if any(isinstance(part, ImagePart) for part in content):
        raise SwitchyardError(ErrorCode.INVALID_REQUEST, f"{role} messages cannot hold images")
    return "".join(part.text for part in content if not isinstance(part, ImagePart))


def _tool_input(arguments: str, name: str) -> Json:
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise SwitchyardError(
            ErrorCode.INVALID_REQUEST, f"tool call {name!r}: arguments are not JSON: {exc}"
        ) from exc
    if not isinstance(value, dict):
        raise SwitchyardError(
            ErrorCode.INVALID_REQUEST, f"tool call {name!r}: arguments must be a JSON object"
        )
    return value


def _messages(messages: list[ChatMessage]) -> tuple[str | None, list[Json]]:
    """The top-level system prompt and the Messages-API turns of an OpenAI conversation."""
    system: list[str] = []
    turns: list[Json] = []
    after_tool = False  # Anthropic wants all results of one assistant turn in one user turn
    for message in messages:
        if isinstance(message, SystemMessage):
            system.append(_plain_text(message.content, message.role))
            continue
        if isinstance(message, ToolMessage):
            content = message.content
            result: Json = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": content if isinstance(content, str) else _blocks(content),
            }
            if after_tool:
                turns[-1]["content"].append(result)
            else:
                turns.append({"role": "user", "content": [result]})
            after_tool = True
            continue
        after_tool = False
        blocks = _blocks(message.content)
        if isinstance(message, AssistantMessage):
            blocks += [
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.function.name,
                    "input": _tool_input(call.function.arguments, call.function.name),
                }
                for call in message.tool_calls or ()
            ]
        turns.append({"role": message.role, "content": blocks})
    return ("\n\n".join(system) if system else None), turns


def _tools(request: ChatCompletionRequest, body: Json) -> None:
    """Add `tools` and `tool_choice` to `body` (nothing when the client forbids tool use)."""
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return
    body["tools"] = [
        {
            "name": tool.function.name,
            "description": tool.function.description or "",
            "input_schema": tool.function.parameters or {"type": "object", "properties": {}},
        }
        for tool in request.tools
    ]
    mapped: Json | None = None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice is not None:
        mapped = {"type": "tool", "name": choice.function.get("name", "")}
    if request.parallel_tool_calls is False:
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    if mapped is not None:
        body["tool_choice"] = mapped


def _common(request: ChatCompletionRequest | CompletionRequest, deployment: Deployment) -> Json:
    body: Json = {
        "model": deployment.upstream_model or request.model,
        "max_tokens": request.token_limit() or deployment.default_max_tokens,
        "stream": True,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop is not None:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    return body


def chat_body(request: ChatCompletionRequest, deployment: Deployment) -> Json:
    """The Messages-API request body for an OpenAI chat request.

    Args:
        request: The client's chat request.
        deployment: The deployment that serves it (upstream model, default token limit).

    Returns:
        The JSON body to POST to `/messages`.

    Raises:
        SwitchyardError: `invalid_request` when the conversation cannot be expressed (tool-call
            arguments that are not a JSON object, images in a system message).
    """
    body = _common(request, deployment)
    system, body["messages"] = _messages(request.messages)
    if system is not None:
        body["system"] = system
    _tools(request, body)
    return body


def completion_body(request: CompletionRequest, deployment: Deployment) -> Json:
    """The Messages-API request body for a legacy text completion: the prompt as one user turn.

    Args:
        request: The client's completion request.
        deployment: The deployment that serves it.

    Returns:
        The JSON body to POST to `/messages`.
    """
    body = _common(request, deployment)
    body["messages"] = [{"role": "user", "content": _blocks(request.prompt_text())}]
    return body


class AnthropicProvider:
    """Adapter for Anthropic's Messages API."""

    def __init__(self, client: Client | None = None) -> None:
        self._client = client or Client()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def streams(self, request: ChatCompletionRequest | CompletionRequest) -> bool:
        """Always: the Messages API is called streamed."""
        return True

    def chat(
        self, request: ChatCompletionRequest, deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream a chat completion from `{base_url}/messages`."""
        return self._stream(lambda: chat_body(request, deployment), deployment)

    def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream a text completion from `{base_url}/messages` (the prompt as a user turn)."""
        return self._stream(lambda: completion_body(request, deployment), deployment)

    async def _stream(
        self, build: Callable[[], Json], deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        # The body is built inside the generator so mapping errors surface on first iteration,
        # like every other provider error.
        payload = orjson.dumps(build())
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "anthropic-version": API_VERSION,
        }
        if deployment.api_key_env and (key := os.environ.get(deployment.api_key_env)):
            headers["x-api-key"] = key
        url = f"{(deployment.base_url or DEFAULT_BASE_URL).rstrip('/')}/messages"
        try:
            async with await self._client.stream(
                "POST",
                url,
                content=payload,
                headers=headers,
                connect_timeout=deployment.connect_timeout,
                read_timeout=max(deployment.first_token_timeout, deployment.idle_timeout),
            ) as response:
                if response.status != 200:
                    raise _status_error(
                        response.status, await response.read(), response.headers.get("retry-after")
                    )
                require_event_stream(response)
                async for event in _translate(_sse_events(response.lines())):
                    yield event
        except HTTPError as exc:
            raise transport_error(exc) from exc


def _event_data(data: list[str]) -> Json:
    try:
        parsed = orjson.loads("\n".join(data))
    except orjson.JSONDecodeError as exc:
        raise SwitchyardError(
            ErrorCode.PROVIDER_BAD_RESPONSE, f"malformed stream event from upstream: {exc}"
        ) from exc
    if not isinstance(parsed, dict):
        raise SwitchyardError(
            ErrorCode.PROVIDER_BAD_RESPONSE, "stream event data is not a JSON object"
        )
    return parsed


async def _sse_events(lines: AsyncIterator[str]) -> AsyncGenerator[tuple[str, Json], None]:
    """(event name, data object) for each server-sent event, as soon as its blank line arrives."""
    name = ""
    data: list[str] = []
    async for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            parsed = _event_data(data)
            yield name or str(parsed.get("type", "")), parsed
            name, data = "", []
    if data:  # the last event may lack its closing blank line
        parsed = _event_data(data)
        yield name or str(parsed.get("type", "")), parsed


@dataclass
class _StreamState:
    """What the translation remembers between events."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason = "stop"
    tools: dict[int, int] = field(default_factory=dict)  # Anthropic block index → tool index
    tools_with_arguments: set[int] = field(default_factory=set)

    def take_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        # Cached prompt tokens are counted apart by Anthropic but are prompt tokens all the same.
        prompt = sum(
            int(usage.get(key) or 0)
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        self.prompt_tokens = max(self.prompt_tokens, prompt)
        self.completion_tokens = max(self.completion_tokens, int(usage.get("output_tokens") or 0))


def _tool_delta(index: int, **fields: Any) -> Delta:
    return Delta(tool_calls=[ToolCallDelta(index=index, **fields)])


async def _translate(
    events: AsyncIterator[tuple[str, Json]],
) -> AsyncGenerator[ProviderEvent, None]:
    """Turn Messages-API stream events into deltas and one final `Finish`."""
    state = _StreamState()
    async for name, data in events:
        try:
            if name == "error":
                kind, message = _upstream_error(data.get("error"))
                raise SwitchyardError(
                    _STREAM_ERROR_CODES.get(kind or "", ErrorCode.PROVIDER_ERROR),
                    f"upstream error: {message or 'stream error'}",
                    **({"upstream_type": kind} if kind else {}),
                )
            if name == "message_start":
                state.take_usage(data["message"].get("usage"))
            elif name == "content_block_start":
                block, index = data["content_block"], int(data["index"])
                if block["type"] == "text" and block.get("text"):
                    yield Delta(content=block["text"])
                elif block["type"] == "tool_use":
                    tool = state.tools[index] = len(state.tools)
                    yield _tool_delta(
                        tool,
                        id=block["id"],
                        type="function",
                        function={"name": block["name"], "arguments": ""},
                    )
            elif name == "content_block_delta":
                delta, index = data["delta"], int(data["index"])
                if delta["type"] == "text_delta" and delta["text"]:
                    yield Delta(content=delta["text"])
                elif (
                    delta["type"] == "input_json_delta"
                    and index in state.tools
                    and delta["partial_json"]
                ):
                    state.tools_with_arguments.add(index)
                    yield _tool_delta(
                        state.tools[index], function={"arguments": delta["partial_json"]}
                    )
            elif name == "content_block_stop":
                index = int(data["index"])
                if index in state.tools and index not in state.tools_with_arguments:
                    # A tool without parameters streams no input; clients still expect JSON.
                    yield _tool_delta(state.tools[index], function={"arguments": "{}"})
            elif name == "message_delta":
                reason = data.get("delta", {}).get("stop_reason")
                if reason is not None:
                    state.finish_reason = _STOP_REASONS.get(reason, "stop")
                state.take_usage(data.get("usage"))
            elif name == "message_stop":
                yield Finish(
                    finish_reason=state.finish_reason,
                    usage=usage_of(state.prompt_tokens, state.completion_tokens),
                )
                return
            # `ping` and event types added later are ignored, as Anthropic asks of clients.
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SwitchyardError(
                ErrorCode.PROVIDER_BAD_RESPONSE, f"malformed {name!r} event from upstream: {exc!r}"
            ) from exc
    raise SwitchyardError(ErrorCode.PROVIDER_ERROR, "upstream stream ended before it finished")
