"""A fast mock OpenAI-compatible provider for the benchmarks: raw asyncio + httptools on uvloop.

Run as its own process: `python bench/mock_provider.py --port 9000` (standard library, uvloop,
httptools and orjson only; no framework, so it is never the bottleneck).

Endpoints (HTTP/1.1, keep-alive):

- `POST /v1/chat/completions`: a JSON answer, or with `"stream": true` server-sent events (chunked
  transfer encoding) ending with `data: [DONE]`. The model name chooses the stream:
  `stream-N` sends N content chunks at once, `paced-N-MS` sends N chunks MS milliseconds apart;
  any other model sends the plain answer as one content chunk. Request fields `mock_chunks` and
  `mock_pace_ms` win over the model name (for direct calls: proxies refuse unknown fields). Each
  streamed content piece is `tok<i>@<monotonic ns> `: the time the mock wrote it (CLOCK_MONOTONIC
  is system-wide), so a client can measure each chunk's one-way latency.
  `stream_options.include_usage` adds a usage chunk; non-streamed answers always carry `usage`.
- `POST /v1/embeddings`: one 8-dimensional vector per input, with `usage`.
- `GET /health`: `ok`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import time
from typing import Any, cast

import httptools
import orjson
import uvloop

ANSWER = "Hello from the mock provider."
_STREAM = re.compile(r"^stream-(\d+)$")
_PACED = re.compile(r"^paced-(\d+)-(\d+(?:\.\d+)?)$")
_MAX_CHUNKS = 100_000

_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_DONE = b"data: [DONE]\n\n"


def _response(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\ncontent-type: "
        + ctype
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _stream_shape(body: dict[str, Any]) -> tuple[int, float]:
    """(content chunks, pacing in ms) for a streamed answer; 0 chunks: the plain answer."""
    model = str(body.get("model", ""))
    chunks, pace = 0, 0.0
    if m := _STREAM.match(model):
        chunks = int(m.group(1))
    elif m := _PACED.match(model):
        chunks, pace = int(m.group(1)), float(m.group(2))
    if "mock_chunks" in body:
        chunks = int(body["mock_chunks"])
    if "mock_pace_ms" in body:
        pace = float(body["mock_pace_ms"])
    pace = max(0.0, pace)
    if pace and not chunks:
        chunks = 1
    return max(0, min(chunks, _MAX_CHUNKS)), pace


def _prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages") or []
    text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    return max(1, len(text.split()))


class MockProtocol(asyncio.Protocol):
    """One client connection: parse requests with httptools, answer in order."""

    def __init__(self, server: MockServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._queue: asyncio.Queue[tuple[bytes, bytes, bytes]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._server.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections -= 1
        if self._worker is not None:
            self._worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(_response("400 Bad Request", b'{"error":"bad request"}'))
                self._transport.close()

    # httptools callbacks ----------------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        url, body = self._url, b"".join(self._body)
        self._url, self._body = b"", []
        # The common case (no pipelining): answer at once when no stream is running.
        if self._worker is None and self._queue.empty() and self._answer_now(method, url, body):
            return
        self._queue.put_nowait((method, url, body))
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    # answers ----------------------------------------------------------------------------------
    async def _drain(self) -> None:
        try:
            while not self._queue.empty():
                method, url, body = self._queue.get_nowait()
                await self._answer(method, url, body)
        finally:
            self._worker = None

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(data)

    def _answer_now(self, method: bytes, url: bytes, body: bytes) -> bool:
        """Answer a request that needs no waiting; False when it must stream."""
        path = url.split(b"?", 1)[0]
        self._server.requests += 1
        if method == b"GET" and path in (b"/health", b"/v1/health"):
            self._write(_response("200 OK", b"ok", b"text/plain"))
            return True
        if method != b"POST":
            self._write(_response("404 Not Found", b'{"error":{"message":"not found"}}'))
            return True
        try:
            payload = orjson.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError:
            self._write(_response("400 Bad Request", b'{"error":{"message":"bad json"}}'))
            return True
        if path.endswith(b"/embeddings"):
            self._write(_response("200 OK", _embeddings(payload)))
            return True
        if not path.endswith(b"/chat/completions"):
            self._write(_response("404 Not Found", b'{"error":{"message":"not found"}}'))
            return True
        if not payload.get("stream"):
            self._write(_response("200 OK", _completion(payload)))
            return True
        chunks, pace = _stream_shape(payload)
        if pace == 0:
            self._stream_at_once(payload, chunks)
            return True
        self._server.requests -= 1  # counted again by _answer
        return False

    async def _answer(self, method: bytes, url: bytes, body: bytes) -> None:
        if self._answer_now(method, url, body):
            return
        payload = orjson.loads(body)
        chunks, pace = _stream_shape(payload)
        self._server.streams_open += 1
        try:
            self._write(_SSE_HEAD)
            gen = _ChunkMaker(payload)
            for i in range(chunks):
                if i:
                    await asyncio.sleep(pace / 1000)
                if self._closed:
                    return
                self._write(_chunked(gen.content(i)))
            self._write(_chunked(gen.tail(chunks)) + b"0\r\n\r\n")
        finally:
            self._server.streams_open -= 1

    def _stream_at_once(self, payload: dict[str, Any], chunks: int) -> None:
        # One write per chunk, as a real provider's chunks arrive in separate segments.
        self._write(_SSE_HEAD)
        gen = _ChunkMaker(payload)
        if chunks == 0:  # the plain answer as one chunk
            self._write(_chunked(gen.content(-1)))
            completion = len(ANSWER.split())
        else:
            for i in range(chunks):
                self._write(_chunked(gen.content(i)))
            completion = chunks
        self._write(_chunked(gen.tail(completion)) + b"0\r\n\r\n")


class _ChunkMaker:
    """OpenAI chat chunks for one streamed answer."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.model = str(payload.get("model", "mock"))
        self.created = int(time.time())
        self.usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        self.prompt = _prompt_tokens(payload)
        self._head = (
            b'data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":'
            + str(self.created).encode()
            + b',"model":'
            + orjson.dumps(self.model)
            + b',"choices":[{"index":0,"delta":{'
        )

    def content(self, i: int) -> bytes:
        role = b'"role":"assistant",' if i <= 0 else b""
        text = b"tok%d@%d " % (i, time.monotonic_ns()) if i >= 0 else ANSWER.encode()
        return self._head + role + b'"content":"' + text + b'"},"finish_reason":null}]}\n\n'

    def tail(self, chunks: int) -> bytes:
        out = self._head + b'},"finish_reason":"stop"}]}\n\n'
        if self.usage:
            usage = {
                "prompt_tokens": self.prompt,
                "completion_tokens": chunks,
                "total_tokens": self.prompt + chunks,
            }
            out += (
                b'data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":'
                + str(self.created).encode()
                + b',"model":'
                + orjson.dumps(self.model)
                + b',"choices":[],"usage":'
                + orjson.dumps(usage)
                + b"}\n\n"
            )
        return out + _DONE


def _completion(payload: dict[str, Any]) -> bytes:
    prompt = _prompt_tokens(payload)
    completion = len(ANSWER.split())
    return orjson.dumps(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(payload.get("model", "mock")),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    )


def _embeddings(payload: dict[str, Any]) -> bytes:
    raw = payload.get("input", "")
    inputs = raw if isinstance(raw, list) else [raw]
    tokens = sum(max(1, len(str(x).split())) for x in inputs)
    dims = int(payload.get("dimensions") or 8)
    vector = [round(1 / dims**0.5, 6)] * dims
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector} for i in range(len(inputs))
            ],
            "model": str(payload.get("model", "mock-embed")),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


class MockServer:
    """Counters shared by the connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.streams_open = 0


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    state = MockServer()
    server = await loop.create_server(lambda: MockProtocol(state), host, port, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 1)


def main() -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
