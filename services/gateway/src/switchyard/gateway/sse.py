"""An SSE response that notices a client disconnect even while no chunk is being written."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from switchyard.gateway.http import on_disconnect

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamResponse(Response):
    """Streams `events` as the response body; a disconnect cancels the stream at once.

    Closing the events iterator runs its cleanup, which is where the gateway tells inference to
    stop generating.
    """

    def __init__(
        self, events: AsyncGenerator[bytes, None], headers: dict[str, str] | None = None
    ) -> None:
        # Response's own __init__ would render an empty body and headers with a
        # `content-length: 0` that a stream never sends: these are the headers it sends.
        self.status_code = 200
        self.media_type = "text/event-stream"
        self.background = None
        self.body = b""
        self._events = events
        self.raw_headers = [
            *SSE_HEADERS,
            *((k.encode(), v.encode()) for k, v in (headers or {}).items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        current = asyncio.current_task()
        disconnected = False

        def leave() -> None:
            nonlocal disconnected
            disconnected = True
            if current is not None:
                current.cancel()

        stop = on_disconnect(receive, leave)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with contextlib.aclosing(self._events) as events:
                async for data in events:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not disconnected:
                raise
            if current is not None:
                current.uncancel()
        except OSError:
            pass  # the client went away while we were writing
        finally:
            stop()
