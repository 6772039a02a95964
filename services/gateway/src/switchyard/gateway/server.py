"""The gateway's HTTP server protocol: uvicorn's httptools protocol, with writes coalesced.

uvicorn writes a response's status line and headers, then its body, as two socket writes (two
system calls, two TCP segments, two wake-ups of the client). Here every write made during one
step of the event loop goes out as one, at the end of that step: a JSON answer is one write, and
so is a burst of SSE events. Nothing waits longer than the current step.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps a transport: `write` gathers bytes and flushes them once, soon (same loop turn)."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue `data`; the first write of a step schedules the flush."""
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if self._transport.is_closing():
            return
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        """Flush what is queued, then close."""
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is queued and close at once."""
        self._pending = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        """Bytes not yet written, queued here or in the transport."""
        return sum(map(len, self._pending)) + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Wrap the connection's transport, then let uvicorn set the connection up."""
        wrapped = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, wrapped))
