"""`EventStreamResponse` as an ASGI app: the head it sends, its events, its end."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.types import Message

from switchyard.gateway.sse import EventStreamResponse


async def test_head_events_and_end() -> None:
    async def events() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"
        yield b"data: [DONE]\n\n"

    response = EventStreamResponse(events(), headers={"x-switchyard-cache": "miss"})
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await response({"type": "http", "method": "POST", "path": "/"}, receive, send)
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-switchyard-cache"] == b"miss"
    assert b"content-length" not in headers  # a stream has none
    assert [b["body"] for b in bodies] == [b"data: 1\n\n", b"data: [DONE]\n\n", b""]
    assert [b["more_body"] for b in bodies] == [True, True, False]
    # What the response object says about itself is what it sent.
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "content-length" not in response.headers
