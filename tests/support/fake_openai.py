"""A real HTTP server that speaks the OpenAI protocol (streamed and not) and misbehaves on demand.

It stands in for a remote model provider (the one thing that cannot run here). The upstream
model name in the request picks the behaviour; a request with `stream: true` is answered with
server-sent events, any other with one JSON body (as OpenAI does):

- `ok`           the words of `OK_TEXT` (streamed: one chunk per word, then `[DONE]`)
- `slow`         waits `SLOW_SECONDS` before the first chunk (or the whole answer)
- `cut`          sends `CUT_AFTER` chunks (or half the JSON body), then drops the connection
- `malformed`    sends a chunk (or a body) that is not JSON
- `html`         answers 200 with `text/html`
- `unavailable`  answers 503 with an OpenAI error body
- `trickle`      sends a chunk every 100 ms for 60 s, or (not streamed) is still thinking after
                 60 s (to watch for the client going away)
- `tools`        a tool call
- `ratelimit-once`  answers 429 with `Retry-After: 1` to the first call of each prompt, then `ok`

Any other name behaves as `modes[name]` (default `ok`), which a test may change while it runs.
Every request is recorded: `calls` (the latest per prompt: the last user message, so a test can
find its own), `history` (every call per prompt) and `counts` (calls per upstream model name).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from tests.support.loopback import LoopbackServer

OK_TEXT = "Hello from the fake provider, five words."
SLOW_SECONDS = 3.0
_BEHAVIOURS = frozenset(
    {"ok", "slow", "cut", "malformed", "html", "unavailable", "trickle", "tools", "ratelimited"}
)
CUT_AFTER = 5


@dataclass
class Call:
    """One request the fake received."""

    path: str
    model: str
    body: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    chunks_sent: int = 0
    closed_at: float | None = None  # when the client closed the connection, if it did


def _marker(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    if messages:
        content = messages[-1].get("content")
        return content if isinstance(content, str) else ""
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


class FakeOpenAI(LoopbackServer):
    """The fake provider, serving on 127.0.0.1 from its own thread and event loop."""

    name = "fake-openai"

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, Call] = {}
        self.history: defaultdict[str, list[Call]] = defaultdict(list)
        self.counts: Counter[str] = Counter()
        self.modes: dict[str, str] = {}

    async def serve(
        self,
        path: str,
        headers: dict[str, str],
        body: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Record the call, then answer as its upstream model name says."""
        call = Call(path=path, model=str(body.get("model")), body=body)
        self.calls[_marker(body)] = call
        self.history[_marker(body)].append(call)
        self.counts[call.model] += 1
        return await self._respond(call, reader, writer)

    async def _respond(
        self, call: Call, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        model = call.model
        if model == "ratelimit-once":
            first = len(self.history[_marker(call.body)]) == 1
            model = "ratelimited" if first else "ok"
        elif model not in _BEHAVIOURS:
            model = self.modes.get(model, "ok")
        if model == "ratelimited":
            body = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit"}})
            writer.write(
                b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
                b"retry-after: 1\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            return True
        if model == "unavailable":
            body = orjson.dumps({"error": {"message": "overloaded", "type": "server_error"}})
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            return True
        if model == "html":
            body = b"<html>not an API</html>"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            await writer.drain()
            return True
        chat = call.path.endswith("/chat/completions")
        if not call.body.get("stream"):
            return await self._whole(call, model, chat, reader, writer)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )

        async def send(data: bytes) -> None:
            frame = b"data: " + data + b"\n\n"
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await writer.drain()
            call.chunks_sent += 1

        def chunk(text: str | None = None, finish: str | None = None, **delta: Any) -> bytes:
            if chat:
                if text is not None:
                    delta["content"] = text
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish}
            return orjson.dumps(
                {"id": "fake", "object": "chunk", "model": model, "choices": [choice]}
            )

        if model == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if model == "malformed":
            await send(b"{this is not json")
        elif model == "cut":
            for i in range(CUT_AFTER):
                await send(chunk(f"part{i} "))
            writer.transport.abort()  # drop the connection without ending the chunked body
            return False
        elif model == "trickle":
            watcher = asyncio.ensure_future(reader.read(1))
            try:
                for i in range(600):
                    if watcher.done():
                        raise ConnectionResetError
                    await send(chunk(f"t{i} "))
                    await asyncio.sleep(0.1)
            except ConnectionError:
                call.closed_at = time.monotonic()
                return False
        elif model == "tools":
            call_delta: dict[str, Any] = {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
            await send(chunk(**call_delta))
            for piece in ('{"city": ', '"Paris"}'):
                await send(chunk(tool_calls=[{"index": 0, "function": {"arguments": piece}}]))
            await send(chunk(finish="tool_calls"))
        else:
            words = OK_TEXT.split(" ")
            for i, word in enumerate(words):
                await send(chunk(word if i == 0 else " " + word))
            await send(chunk(finish="stop"))
            usage = {
                "prompt_tokens": 7,
                "completion_tokens": len(words),
                "total_tokens": 7 + len(words),
            }
            await send(
                orjson.dumps({"id": "fake", "object": "chunk", "choices": [], "usage": usage})
            )
        with contextlib.suppress(ConnectionError):
            await send(b"[DONE]")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        return True

    async def _whole(
        self,
        call: Call,
        model: str,
        chat: bool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """A non-streamed answer: one `chat.completion` (or `text_completion`) JSON body."""
        if model == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        elif model == "trickle":  # thinks for a minute, watching for the client to leave
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1), timeout=60)
            call.closed_at = time.monotonic()
            return False
        text, finish, message = OK_TEXT, "stop", {}
        if model == "tools":
            text, finish = "", "tool_calls"
            function = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
            message = {"tool_calls": [{"id": "call_1", "type": "function", "function": function}]}
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text or None, **message}
        else:
            choice["text"] = text
        words = len(text.split(" ")) if text else 1
        usage = {"prompt_tokens": 7, "completion_tokens": words, "total_tokens": 7 + words}
        kind = "chat.completion" if chat else "text_completion"
        body = orjson.dumps(
            {"id": "fake", "object": kind, "model": model, "choices": [choice], "usage": usage}
        )
        if model == "malformed":
            body = b"{this is not json"
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        if model == "cut":
            writer.write(head % len(body) + body[: len(body) // 2])
            await writer.drain()
            writer.transport.abort()  # drop the connection before the body is complete
            return False
        writer.write(head % len(body) + body)
        await writer.drain()
        call.chunks_sent = 1
        return True
