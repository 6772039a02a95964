"""Reply streams over NATS: one wildcard inbox subscription for the whole gateway.

Each request gets a token under the gateway's inbox prefix; the responder publishes the stream's
messages there and the mux routes each one to the request's queue. One subscription serves every
request, so opening a stream costs no SUB/UNSUB round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from switchyard.contracts import (
    STREAM_MESSAGE,
    CancelMessage,
    Envelope,
    ErrorCode,
    StreamChunk,
    StreamDone,
    StreamError,
    SwitchyardError,
    subjects,
)

log = logging.getLogger(__name__)

NO_RESPONDERS = "503"
StreamItem = StreamChunk | StreamDone | StreamError


class ReplyStream:
    """The messages of one reply stream, checked for order and gaps."""

    def __init__(self, queue: asyncio.Queue[Msg], on_close: Callable[[], object]) -> None:
        self._queue = queue
        self._on_close = on_close
        self._expected = 0
        self.finished = False

    def close(self) -> None:
        """Stop routing replies here."""
        self._on_close()

    def ready(self) -> bool:
        """Whether a message is already waiting (so `next` returns without waiting)."""
        return not self._queue.empty()

    async def next(self, timeout: float) -> StreamItem:
        """The next message; raises `TimeoutError` when none arrives within `timeout` seconds."""
        if self._queue.empty():
            async with asyncio.timeout(timeout):
                msg = await self._queue.get()
        else:  # already here: no timer to arm (the common case inside a fast stream)
            msg = self._queue.get_nowait()
        if msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            self.finished = True
            raise SwitchyardError(ErrorCode.SERVICE_UNAVAILABLE, "no inference service is running")
        try:
            item = STREAM_MESSAGE.validate_json(msg.data)
        except ValidationError as exc:
            self.finished = True
            raise SwitchyardError(ErrorCode.STREAM_BROKEN, "undecodable stream message") from exc
        if item.seq != self._expected:
            self.finished = True
            raise SwitchyardError(
                ErrorCode.STREAM_BROKEN,
                f"stream message {item.seq} arrived, expected {self._expected}",
            )
        if isinstance(item, StreamChunk):
            self._expected += 1
        else:
            self.finished = True
        return item


class StreamMux:
    """Routes every reply stream arriving on the gateway's inbox prefix."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._queues: dict[str, asyncio.Queue[Msg]] = {}
        self._ids = itertools.count()
        self._sub: Subscription | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Subscribe the inbox wildcard."""
        self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._route)

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _route(self, msg: Msg) -> None:
        queue = self._queues.get(msg.subject[len(self._prefix) + 1 :])
        if queue is not None:
            queue.put_nowait(msg)

    async def send(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> ReplyStream:
        """Send a request to `subject`; its replies arrive on the returned stream (close it)."""
        token = str(next(self._ids))
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._queues[token] = queue
        try:
            await self._nc.publish(
                subject, payload, reply=f"{self._prefix}.{token}", headers=headers
            )
        except Exception as exc:
            del self._queues[token]
            raise SwitchyardError(
                ErrorCode.SERVICE_UNAVAILABLE, f"NATS publish failed: {exc}"
            ) from exc
        return ReplyStream(queue, lambda: self._queues.pop(token, None))

    def cancel(self, envelope: Envelope, reason: str) -> None:
        """Tell inference to stop a request (fire and forget: safe from a cancelled task)."""
        message = CancelMessage(**envelope.header(), reason=reason)
        task = asyncio.get_running_loop().create_task(
            self._nc.publish(
                subjects.cancel(envelope.request_id), message.model_dump_json().encode()
            )
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
