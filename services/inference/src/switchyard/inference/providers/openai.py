"""Any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, Ollama, llama.cpp server …).

A client's streamed request is streamed upstream and parsed incrementally: each SSE `data:` line
becomes a delta as soon as it arrives. A non-streamed request is sent non-streamed: the answer
comes back as one JSON body, bounded by the deployment's `response_timeout` — a whole answer is one
read and one parse, where a stream of it costs an event (and a wake-up) per token.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

import orjson

from switchyard.contracts import (
    ChatCompletionRequest,
    CompletionRequest,
    Delta,
    ErrorCode,
    SwitchyardError,
    ToolCallDelta,
    Usage,
)
from switchyard.contracts.openai import FinishReason
from switchyard.inference.config import Deployment
from switchyard.inference.embeddings.result import Embedded
from switchyard.inference.embeddings.upstream import embeddings_payload, parse_embeddings
from switchyard.inference.providers.base import Finish, ProviderEvent, usage_of
from switchyard.inference.providers.client import Client, HTTPError, Response
from switchyard.inference.providers.http import require_event_stream, require_json, transport_error

_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_REQUEST,
    408: ErrorCode.PROVIDER_TIMEOUT,
    413: ErrorCode.INVALID_REQUEST,
    422: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.UPSTREAM_RATE_LIMITED,
    503: ErrorCode.PROVIDER_UNAVAILABLE,
    504: ErrorCode.PROVIDER_TIMEOUT,
}


def _status_error(status: int, body: bytes, retry_after: str | None) -> SwitchyardError:
    code = _STATUS_CODES.get(status, ErrorCode.PROVIDER_ERROR)
    message = f"upstream answered HTTP {status}"
    try:
        upstream = orjson.loads(body).get("error", {})
        if isinstance(upstream, dict) and isinstance(upstream.get("message"), str):
            message = f"{message}: {upstream['message']}"
    except (orjson.JSONDecodeError, AttributeError):
        pass
    details: dict[str, Any] = {"upstream_status": status}
    if retry_after is not None:
        details["retry_after"] = retry_after
    return SwitchyardError(code, message, **details)


def _payload(
    request: ChatCompletionRequest | CompletionRequest, deployment: Deployment, name: str
) -> bytes:
    body = request.model_dump(exclude_none=True, exclude={"stream", "stream_options"})
    body["model"] = deployment.upstream_model or name
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.token_limit() is None:
        body["max_tokens"] = deployment.default_max_tokens
    return orjson.dumps(body)


class OpenAIProvider:
    """Adapter for OpenAI-compatible `/chat/completions` and `/completions`."""

    def __init__(self, client: Client | None = None) -> None:
        self._client = client or Client()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def streams(self, request: ChatCompletionRequest | CompletionRequest) -> bool:
        """Whether the call upstream streams: as the client asked."""
        return request.stream

    def chat(
        self, request: ChatCompletionRequest, deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        """A chat completion from `{base_url}/chat/completions` (streamed if the client asked)."""
        call = self._stream if request.stream else self._whole
        return call("chat/completions", request, deployment, chat=True)

    def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        """A text completion from `{base_url}/completions` (streamed if the client asked)."""
        call = self._stream if request.stream else self._whole
        return call("completions", request, deployment, chat=False)

    async def embed(
        self,
        texts: list[str],
        deployment: Deployment,
        *,
        name: str,
        dimensions: int | None = None,
        user: str | None = None,
    ) -> Embedded:
        """Embed `texts` with `{base_url}/embeddings`; vectors come back in input order.

        Args:
            texts: the inputs.
            deployment: where and how to call (base URL, key, timeouts, upstream model name).
            name: the public model name (sent upstream unless the deployment names another).
            dimensions: vector length to ask for, if the client chose one.
            user: the client's end-user id, passed through.
        """
        model = deployment.upstream_model or name
        try:
            async with await self._client.stream(
                "POST",
                _url(deployment, "embeddings"),
                content=embeddings_payload(texts, model, dimensions=dimensions, user=user),
                headers=_headers(deployment, "application/json"),
                connect_timeout=deployment.connect_timeout,
                read_timeout=deployment.first_token_timeout,
            ) as response:
                body = await response.read()
        except HTTPError as exc:
            raise transport_error(exc) from exc
        if response.status != 200:
            raise _status_error(response.status, body, response.headers.get("retry-after"))
        return parse_embeddings(body, len(texts))

    def _send(
        self,
        path: str,
        request: ChatCompletionRequest | CompletionRequest,
        deployment: Deployment,
        accept: str,
        read_timeout: float,
    ) -> Awaitable[Response]:
        """POST the request to `{base_url}/{path}`; the response once its head has arrived."""
        return self._client.stream(
            "POST",
            _url(deployment, path),
            content=_payload(request, deployment, request.model),
            headers=_headers(deployment, accept),
            connect_timeout=deployment.connect_timeout,
            read_timeout=read_timeout,
        )

    async def _whole(
        self,
        path: str,
        request: ChatCompletionRequest | CompletionRequest,
        deployment: Deployment,
        *,
        chat: bool,
    ) -> AsyncGenerator[ProviderEvent, None]:
        """A non-streamed call: the whole answer as one `Finish` (its fragment in `tail`)."""
        # The caller's timer bounds the answer by `response_timeout` (and says so in its error);
        # this read timeout is only the backstop behind it.
        backstop = deployment.response_timeout + 1.0
        try:
            response = await self._send(path, request, deployment, "application/json", backstop)
            async with response:
                body = await response.read()
        except HTTPError as exc:
            raise transport_error(exc) from exc
        if response.status != 200:
            raise _status_error(response.status, body, response.headers.get("retry-after"))
        require_json(response)
        yield _answer(body, chat=chat)

    async def _stream(
        self,
        path: str,
        request: ChatCompletionRequest | CompletionRequest,
        deployment: Deployment,
        *,
        chat: bool,
    ) -> AsyncGenerator[ProviderEvent, None]:
        read_timeout = max(deployment.first_token_timeout, deployment.idle_timeout)
        try:
            response = await self._send(
                path, request, deployment, "text/event-stream", read_timeout
            )
        except HTTPError as exc:
            raise transport_error(exc) from exc
        try:
            if response.status != 200:
                body = await response.read()
                raise _status_error(response.status, body, response.headers.get("retry-after"))
            require_event_stream(response)
            reader = _SseReader(chat=chat)
            # A plain loop over `next_lines`, no generator layers (see `Response.next_lines`).
            while (batch := await response.next_lines()) is not None:
                event = reader.take(batch)
                if isinstance(event, Finish):
                    # What follows [DONE] (the chunked terminator) may still be on its way: let
                    # it arrive in the background, so the connection returns to the pool without
                    # delaying the answer's end (a new TCP connection per request costs more
                    # than the rest of the call).
                    response.linger()
                    yield event
                    return
                if event is not None:
                    yield event
            yield reader.finish(done=False)
        except HTTPError as exc:
            raise transport_error(exc) from exc
        finally:
            response.release()  # an unfinished response closes its connection: upstream stops


def _url(deployment: Deployment, path: str) -> str:
    if not deployment.base_url:
        raise SwitchyardError(ErrorCode.INTERNAL_ERROR, "model deployment has no base_url")
    return f"{deployment.base_url.rstrip('/')}/{path}"


def _headers(deployment: Deployment, accept: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": accept}
    if deployment.api_key_env and (key := os.environ.get(deployment.api_key_env)):
        headers["authorization"] = f"Bearer {key}"
    return headers


def _answer(body: bytes, *, chat: bool) -> Finish:
    """A non-streamed answer (`chat.completion` or `text_completion`): its first choice."""
    try:
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise TypeError("the answer is not a JSON object")
        if data.get("error"):
            message = data["error"].get("message", "upstream error")
            raise SwitchyardError(ErrorCode.PROVIDER_ERROR, f"upstream error: {message}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError("the answer has no choices")
        choice = choices[0]
        if chat:
            message = choice.get("message") or {}
            calls = message.get("tool_calls")
            # A whole tool call has no `index`: its place in the list is its index.
            indexed = [{**c, "index": i} for i, c in enumerate(calls)] if calls else None
            delta = _delta(message.get("content"), indexed)
        else:
            delta = _delta(choice.get("text"), None)
        tail = [delta] if delta.content or delta.tool_calls else []
        raw = data.get("usage")
        if raw:
            usage = usage_of(int(raw.get("prompt_tokens", 0)), int(raw.get("completion_tokens", 0)))
        else:
            usage = usage_of(0, len(tail))
        return Finish(_finish_reason(choice.get("finish_reason")), usage, tail)
    except SwitchyardError:
        raise
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise SwitchyardError(
            ErrorCode.PROVIDER_BAD_RESPONSE, f"malformed answer from upstream: {exc}"
        ) from exc


def _finish_reason(reason: Any) -> FinishReason:
    """OpenAI's finish reason, or `stop` for one this API does not know."""
    if reason in {"stop", "length", "tool_calls", "content_filter"}:
        return reason  # type: ignore[no-any-return]
    return "stop"


def _tool_call_deltas(raw: Any) -> list[ToolCallDelta] | None:
    if not raw:
        return None
    return [ToolCallDelta.model_validate(item) for item in raw]


def _delta(content: Any, tool_calls: Any) -> Delta:
    """A fragment from upstream JSON (validated: 1 µs; `model_construct` would cost 3)."""
    if tool_calls:
        return Delta(content=content, tool_calls=_tool_call_deltas(tool_calls))
    return Delta(content=content)


class _SseReader:
    """OpenAI's stream, line by line: deltas as they come, and the finish reason and usage."""

    def __init__(self, *, chat: bool) -> None:
        self._chat = chat
        self._finish_reason: Any = None
        self._usage: Usage | None = None
        self._fragments = 0

    def feed(self, line: str, out: list[Delta]) -> bool:
        """Read one line, appending its deltas to `out`; True at `[DONE]`."""
        if not line.startswith("data:"):
            return False  # blank separators, comments and `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return True
        try:
            chunk = orjson.loads(data)
            if chunk.get("error"):
                message = chunk["error"].get("message", "upstream stream error")
                raise SwitchyardError(ErrorCode.PROVIDER_ERROR, f"upstream error: {message}")
            if chunk.get("usage"):
                self._usage = usage_of(
                    int(chunk["usage"].get("prompt_tokens", 0)),
                    int(chunk["usage"].get("completion_tokens", 0)),
                )
            for choice in chunk.get("choices") or ():
                if self._chat:
                    raw = choice.get("delta") or {}
                    delta = _delta(raw.get("content"), raw.get("tool_calls"))
                else:
                    delta = _delta(choice.get("text"), None)
                if delta.content or delta.tool_calls:
                    self._fragments += 1
                    out.append(delta)
                self._finish_reason = choice.get("finish_reason") or self._finish_reason
        except SwitchyardError:
            raise
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            raise SwitchyardError(
                ErrorCode.PROVIDER_BAD_RESPONSE, f"malformed stream chunk from upstream: {exc}"
            ) from exc
        return False

    def take(self, batch: list[str]) -> ProviderEvent | None:
        """The event of lines that arrived together: their deltas as one burst (a lone delta as
        itself), or the `Finish` at `[DONE]` with the deltas that came with it; None if the
        lines carried no fragment."""
        out: list[Delta] = []
        for line in batch:
            if self.feed(line, out):  # the last fragments ride with the end
                finish = self.finish(done=True)
                return Finish(finish.finish_reason, finish.usage, out) if out else finish
        if not out:
            return None
        return out[0] if len(out) == 1 else out

    def finish(self, *, done: bool) -> Finish:
        """The stream's end: at `[DONE]`, or when the body ended (then a finish reason must have
        come, or the stream was cut short)."""
        if not done and self._finish_reason is None:
            raise SwitchyardError(
                ErrorCode.PROVIDER_ERROR, "upstream stream ended before it finished"
            )
        return Finish(
            finish_reason=_finish_reason(self._finish_reason),
            usage=self._usage or usage_of(0, self._fragments),
        )
