"""OpenAI response shapes: whole JSON answers and SSE chunk streams built from reply streams."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, Literal

import orjson

from switchyard.contracts import (
    ChatCompletionRequest,
    CompletionRequest,
    ErrorBody,
    ErrorCode,
    StreamChunk,
    StreamDone,
    SwitchyardError,
)
from switchyard.gateway.errors import openai_error
from switchyard.gateway.relay import Exchange
from switchyard.gateway.streams import StreamItem

log = logging.getLogger(__name__)

Kind = Literal["chat", "completion"]


def _ids(kind: Kind, exchange: Exchange) -> tuple[str, str]:
    prefix, obj = ("chatcmpl", "chat.completion") if kind == "chat" else ("cmpl", "text_completion")
    return f"{prefix}-{exchange.envelope.request_id}", obj


async def collect(kind: Kind, exchange: Exchange, first: StreamItem) -> dict[str, Any]:
    """Gather the whole stream into one OpenAI response body."""
    text: list[str] = []
    tool_calls: dict[int, dict[str, Any]] = {}
    # A plain loop, not `async for` over an async generator: leaving one early (at `done`) makes
    # the event loop schedule a task to finalise it — a task and a wake-up per request.
    item = first
    while True:
        assert isinstance(item, StreamChunk | StreamDone)  # errors are raised by `next`
        for delta in item.fragments():
            if delta.content:
                text.append(delta.content)
            for call in delta.tool_calls or ():
                slot = tool_calls.setdefault(
                    call.index,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.id or slot["id"]
                for key in ("name", "arguments"):
                    slot["function"][key] += (call.function or {}).get(key) or ""
        if isinstance(item, StreamChunk):
            item = await exchange.next()
            continue
        ident, obj = _ids(kind, exchange)
        content = "".join(text)
        if kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content or None}
            if tool_calls:
                message["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "finish_reason": item.finish_reason,
                "logprobs": None,
            }
        else:
            choice = {
                "index": 0,
                "text": content,
                "finish_reason": item.finish_reason,
                "logprobs": None,
            }
        body: dict[str, Any] = {
            "id": ident,
            "object": obj,
            "created": int(time.time()),
            "model": item.model,
            "choices": [choice],
            "usage": item.usage.model_dump(exclude_none=True),
        }
        if degraded := (first.degraded if isinstance(first, StreamChunk) else item.degraded):
            body["degraded"] = degraded
        if citations := _citations(first):
            body["citations"] = citations
        return body


def _citations(first: StreamItem) -> list[dict[str, Any]] | None:
    if isinstance(first, StreamChunk | StreamDone) and first.citations is not None:
        return [c.model_dump() for c in first.citations]
    return None


def answer_headers(first: StreamItem) -> dict[str, str]:
    """Response headers saying how the answer was made (cache hit or miss, degraded mode)."""
    headers: dict[str, str] = {}
    if isinstance(first, StreamChunk | StreamDone):
        if first.cache is not None:
            headers["x-switchyard-cache"] = first.cache
        if first.degraded:
            headers["x-switchyard-degraded"] = ",".join(first.degraded)
    return headers


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def sse_events(
    kind: Kind,
    exchange: Exchange,
    first: StreamItem,
    request: ChatCompletionRequest | CompletionRequest,
) -> AsyncGenerator[bytes, None]:
    """The SSE body: OpenAI chunks, then `data: [DONE]`; a failure ends it with an error event.

    Events whose messages have already arrived are written together (one write instead of one
    per chunk when the upstream sends a burst); an event is never held back waiting for more.
    """
    ident, obj = _ids(kind, exchange)
    obj = f"{obj}.chunk" if kind == "chat" else obj
    created = int(time.time())
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    # Every chunk shares these bytes: `{"id":…,"object":…,"created":…,"model":`
    head = orjson.dumps({"id": ident, "object": obj, "created": created})[:-1] + b',"model":'
    sent = 0
    pending: list[bytes] = []
    try:
        if (citations := _citations(first)) is not None:
            # Sources come first, as a chunk with no choices that SDKs pass through untouched.
            model = first.model if isinstance(first, StreamChunk | StreamDone) else ""
            pending.append(_sse_chunk(head, model, {"choices": [], "citations": citations}))
        item = first
        while True:
            assert isinstance(item, StreamChunk | StreamDone)  # errors are raised by `next`
            if fragments := item.fragments():
                model_json = orjson.dumps(item.model)
                for fragment in fragments:
                    if kind == "chat":
                        delta = fragment.as_dict()
                        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
                    else:
                        text = fragment.content or ""
                        choice = {"index": 0, "text": text, "finish_reason": None}
                    pending.append(_sse_chunk(head, model_json, {"choices": [choice]}))
                    sent += 1
            if isinstance(item, StreamChunk):
                if not exchange.ready():
                    yield b"".join(pending)
                    pending.clear()
                item = await exchange.next()
                continue
            last: dict[str, Any] = (
                {"index": 0, "delta": {}, "finish_reason": item.finish_reason}
                if kind == "chat"
                else {"index": 0, "text": "", "finish_reason": item.finish_reason}
            )
            pending.append(_sse_chunk(head, item.model, {"choices": [last]}))
            if include_usage:
                usage = item.usage.model_dump(exclude_none=True)
                pending.append(_sse_chunk(head, item.model, {"choices": [], "usage": usage}))
            pending.append(b"data: [DONE]\n\n")
            yield b"".join(pending)
            pending.clear()
            return
    except SwitchyardError as exc:
        log.warning("stream failed after %d chunks: %s", sent, exc.body.message)
        pending.append(_sse(openai_error(exc.body, partial=sent > 0)))
        yield b"".join(pending)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("stream relay crashed")
        error = ErrorBody.of(ErrorCode.INTERNAL_ERROR, "internal error")
        pending.append(_sse(openai_error(error, partial=sent > 0)))
        yield b"".join(pending)
    finally:
        exchange.close()


def _sse_chunk(head: bytes, model: str | bytes, rest: dict[str, Any]) -> bytes:
    """One chunk event: the shared head, the model (a name, or already JSON-encoded), then
    `rest`'s fields."""
    model_json = model if isinstance(model, bytes) else orjson.dumps(model)
    return b"data: " + head + model_json + b"," + orjson.dumps(rest)[1:] + b"\n\n"
