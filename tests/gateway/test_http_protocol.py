"""The gateway's HTTP protocol: a response's head leaves with the write that follows it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.requests import Request

from switchyard.gateway.http import (
    HEADERS,
    HeadWithBodyProtocol,
    _HeadWithBody,
    header,
    on_disconnect,
)

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recorder:
    """Just enough of a transport to see what is written, and when it is closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.events.append("pause_reading")


def wrapped() -> tuple[_HeadWithBody, Recorder]:
    recorder = Recorder()
    transport: Any = recorder
    return _HeadWithBody(transport, asyncio.get_running_loop()), recorder


async def test_head_and_body_are_one_write_at_once() -> None:
    transport, recorder = wrapped()
    transport.write(HEAD)
    assert recorder.writes == []
    assert transport.get_write_buffer_size() == len(HEAD)
    transport.write(b"{}")
    assert recorder.writes == [HEAD + b"{}"]  # not waiting for the end of the pass
    transport.write(b"more")  # a later write (an SSE event) goes out at once
    assert recorder.writes[1:] == [b"more"]
    await asyncio.sleep(0)
    assert len(recorder.writes) == 2  # nothing twice


async def test_a_head_alone_leaves_at_the_end_of_its_pass() -> None:
    transport, recorder = wrapped()
    transport.write(HEAD)
    await asyncio.sleep(0)
    assert recorder.writes == [HEAD]


async def test_close_writes_the_held_head_first() -> None:
    transport, recorder = wrapped()
    transport.write(HEAD)
    transport.close()
    assert recorder.events == ["write", "close"]
    await asyncio.sleep(0)
    assert recorder.writes == [HEAD]


async def test_nothing_goes_to_a_closing_transport_and_the_rest_passes_through() -> None:
    transport, recorder = wrapped()
    transport.pause_reading()
    assert recorder.events == ["pause_reading"]
    transport.write(HEAD)
    recorder.closing = True
    await asyncio.sleep(0)
    assert recorder.writes == []


def queued_receive() -> tuple[asyncio.Queue[dict[str, Any]], Callable[[], Awaitable[Any]]]:
    """An ASGI `receive` that is not uvicorn's: it returns what the test puts on the queue."""
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        return await messages.get()

    return messages, receive


async def test_on_disconnect_without_uvicorn_watches_receive() -> None:
    """Where `receive` is not the protocol's, a watcher task reads it for the disconnect."""
    messages, receive = queued_receive()
    called: list[str] = []
    stop = on_disconnect(receive, lambda: called.append("gone"))
    await messages.put({"type": "http.request", "body": b"", "more_body": False})
    await asyncio.sleep(0.01)
    assert called == []
    await messages.put({"type": "http.disconnect"})
    await asyncio.sleep(0.01)
    assert called == ["gone"]
    stop()


async def test_on_disconnect_called_off_never_fires() -> None:
    messages, receive = queued_receive()
    called: list[str] = []
    stop = on_disconnect(receive, lambda: called.append("gone"))
    stop()
    await messages.put({"type": "http.disconnect"})
    await asyncio.sleep(0.01)
    assert called == []


async def test_a_lost_connection_calls_back_the_request_being_served() -> None:
    """Through the real protocol: a request waits in the app until its client leaves."""
    called = asyncio.Event()
    entered = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        stop = on_disconnect(receive, called.set)
        entered.set()
        try:
            await asyncio.wait_for(called.wait(), 5)
        finally:
            stop()

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, http=HeadWithBodyProtocol, lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        await asyncio.wait_for(entered.wait(), 5)
        assert not called.is_set()
        writer.close()
        await asyncio.wait_for(called.wait(), 5)
    finally:
        server.should_exit = True
        await serving


def test_header_reads_the_collected_headers_as_starlette_does() -> None:
    """`header` answers from the headers the request-context layer collected, and as Starlette's
    `Headers.get` would: the first of repeated headers, decoded as Latin-1, None when absent."""
    raw = [
        (b"authorization", b"Bearer k1"),
        (b"x-switchyard-cache", b"off"),
        (b"authorization", b"Bearer k2"),
        (b"x-note", "caf\u00e9".encode("latin-1")),
    ]
    plain = Request({"type": "http", "headers": raw})
    collected = Request({"type": "http", "headers": [], "state": {HEADERS: dict(reversed(raw))}})
    for name in ("authorization", "x-switchyard-cache", "x-note", "x-switchyard-timeout"):
        assert header(collected, name) == plain.headers.get(name) == header(plain, name)
    assert header(collected, "authorization") == "Bearer k1"
    assert header(collected, "x-note") == "caf\u00e9"
    assert header(collected, "x-switchyard-timeout") is None
