"""uvicorn's httptools protocol, with a response's head and the body after it in one write, and
a disconnect that calls back instead of waking a watcher task.

uvicorn writes a response's head when the app sends `http.response.start` and its body when it
sends `http.response.body`: two system calls and two TCP segments for every non-streamed answer
(and a client that may wake up twice). Here the head is held back until the next write (the
body, or an SSE stream's first event), which takes it along; if nothing follows in the same
event-loop pass, the head goes out alone at the end of the pass. Every other write goes out at
once (holding them to the end of the pass cost c=1 latency: the request's remaining work ran
before the answer left).

A request that must stop when its client leaves registers a callback with `on_disconnect`; the
protocol calls it when the connection is lost. ASGI itself only says so through `receive()`,
which needs a task waiting on it for the whole request (a task made, started and cancelled per
request). Where `receive` is not this protocol's, `on_disconnect` runs that task instead.
Everything else is uvicorn's protocol as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

_HOOK = "switchyard_on_disconnect"  # the callback's attribute on uvicorn's request cycle

# Where the request-context layer leaves the request's headers in the ASGI scope's state: a dict
# of lower-case names to values (bytes), the first of repeated headers winning, as Starlette's
# `Headers.get` reads them.
HEADERS = "headers"


def header(request: Request, name: str) -> str | None:
    """The value of the request's header `name` (lower case), read from the headers the
    request-context layer collected in one pass, else through Starlette (which scans the raw
    list and decodes each name on every lookup)."""
    collected: dict[bytes, bytes] | None = request.scope.get("state", {}).get(HEADERS)
    if collected is None:
        return request.headers.get(name)
    value = collected.get(name.encode("latin-1"))
    return None if value is None else value.decode("latin-1")


class _HeadWithBody:
    """A transport that holds a response head until the next write takes it along (any other
    call passes through, after the held head)."""

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:5] == b"HTTP/":  # uvicorn writes a head in one piece, before its body
            self._head = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Write a held head (at the end of its pass, or before the connection changes)."""
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._head or b"")

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadWithBodyProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` over `_HeadWithBody` (pass the class as uvicorn's `http`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = _HeadWithBody(transport, self.loop)
        super().connection_made(wrapped)

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and cycle.disconnected:
            callback = getattr(cycle, _HOOK, None)
            if callback is not None:
                setattr(cycle, _HOOK, None)
                callback()


def on_disconnect(receive: Receive, callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback()` once if this request's client disconnects; returns the function that
    calls the arrangement off (call it when the work is done). One at a time per request: a
    later arrangement replaces an earlier one."""
    cycle = getattr(receive, "__self__", None)
    if isinstance(cycle, RequestResponseCycle) and isinstance(cycle.transport, _HeadWithBody):
        if cycle.disconnected:  # gone already: the callback runs as soon as the caller waits
            handle = asyncio.get_running_loop().call_soon(callback)
            return handle.cancel
        setattr(cycle, _HOOK, callback)
        return lambda: setattr(cycle, _HOOK, None)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        callback()

    watcher = asyncio.ensure_future(watch())

    def stop() -> None:
        watcher.cancel()

    return stop


class JsonResponse(Response):
    """A JSON body encoded with orjson. (FastAPI's `ORJSONResponse` does the same but is
    deprecated: each one made goes through a deprecation warning, per request.)"""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The body's bytes."""
        return orjson.dumps(content)
