"""A real HTTP server that speaks Anthropic's Messages streaming protocol, and fails on demand.

It stands in for the Anthropic API. The upstream model name in the request picks the behaviour:

- `text`          streams `TEXT` in several `text_delta` events; usage in the start and end events
- `tool`          streams a short text block, then a `tool_use` block (`get_weather`, arguments in
                  `input_json_delta` pieces), with stop reason `tool_use`
- `overloaded`    answers HTTP 529 with an Anthropic error body
- `rate_limited`  answers HTTP 429 with an error body and `retry-after: 7`
- `stream_error`  streams some text, then an `error` event (`overloaded_error`)
- `cut`           sends `CUT_AFTER` text deltas, then drops the connection mid-stream

Every request is recorded (`calls`), keyed by the text of the last user turn so a test can find
its own, with its headers and parsed body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from tests.support.loopback import LoopbackServer

TEXT = "Hello from the fake Anthropic API, streamed in pieces."
TOOL_PREAMBLE = "Let me check."
TOOL_ARGUMENT_PIECES = ('{"city"', ': "Pa', 'ris"}')
INPUT_TOKENS = 11
OUTPUT_TOKENS = 9
CUT_AFTER = 3
RETRY_AFTER = "7"


@dataclass
class Call:
    """One request the fake received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def _marker(body: dict[str, Any]) -> str:
    """The text of the last user turn (tests put a unique marker there)."""
    messages = body.get("messages") or []
    if not messages:
        return ""
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    texts = [block.get("text", "") for block in content or () if block.get("type") == "text"]
    return texts[-1] if texts else ""


def _status(code: int, reason: str, body: dict[str, Any], extra: bytes = b"") -> bytes:
    payload = orjson.dumps(body)
    return b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        code,
        reason.encode(),
        len(payload),
        extra,
        payload,
    )


class FakeAnthropic(LoopbackServer):
    """The fake Messages API, serving on 127.0.0.1 from its own thread and event loop."""

    name = "fake-anthropic"

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, Call] = {}

    async def serve(
        self,
        path: str,
        headers: dict[str, str],
        body: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Record the call, then answer as its upstream model name says."""
        call = Call(path=path, headers=headers, body=body)
        self.calls[_marker(body)] = call
        return await self._respond(call, writer)

    async def _respond(self, call: Call, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection was dropped."""
        model = str(call.body.get("model"))
        if model == "overloaded":
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            writer.write(_status(529, "Site Overloaded", error))
            await writer.drain()
            return True
        if model == "rate_limited":
            error = {
                "type": "error",
                "error": {"type": "rate_limit_error", "message": "Number of requests too high"},
            }
            writer.write(
                _status(
                    429, "Too Many Requests", error, b"retry-after: %s\r\n" % RETRY_AFTER.encode()
                )
            )
            await writer.drain()
            return True
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )

        async def send(event: str, data: dict[str, Any]) -> None:
            frame = b"event: %s\ndata: %s\n\n" % (
                event.encode(),
                orjson.dumps({"type": event, **data}),
            )
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await writer.drain()

        async def text_block(index: int, text: str, pieces: int) -> None:
            await send(
                "content_block_start",
                {"index": index, "content_block": {"type": "text", "text": ""}},
            )
            size = -(-len(text) // pieces)
            for start in range(0, len(text), size):
                delta = {"type": "text_delta", "text": text[start : start + size]}
                await send("content_block_delta", {"index": index, "delta": delta})
            await send("content_block_stop", {"index": index})

        message: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1},
        }
        await send("message_start", {"message": message})
        await send("ping", {})
        stop_reason = "end_turn"
        if model == "cut":
            await send(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            for i in range(CUT_AFTER):
                delta = {"type": "text_delta", "text": f"part{i} "}
                await send("content_block_delta", {"index": 0, "delta": delta})
            writer.transport.abort()  # drop the connection without ending the chunked body
            return False
        if model == "stream_error":
            await text_block(0, TEXT, 2)
            error = {"type": "overloaded_error", "message": "Overloaded"}
            await send("error", {"error": error})
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        if model == "tool":
            await text_block(0, TOOL_PREAMBLE, 1)
            tool = {"type": "tool_use", "id": "toolu_fake_1", "name": "get_weather", "input": {}}
            await send("content_block_start", {"index": 1, "content_block": tool})
            for piece in TOOL_ARGUMENT_PIECES:
                delta = {"type": "input_json_delta", "partial_json": piece}
                await send("content_block_delta", {"index": 1, "delta": delta})
            await send("content_block_stop", {"index": 1})
            stop_reason = "tool_use"
        else:
            await text_block(0, TEXT, 5)
        await send(
            "message_delta",
            {
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": OUTPUT_TOKENS},
            },
        )
        await send("message_stop", {})
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True
