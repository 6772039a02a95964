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
from collections import deque
from collections.abc import Callable

from nats.aio.client import Client
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
from switchyard.runtime.hotpath import Headers, HotPath
from switchyard.runtime.lifecycle import Background
from switchyard.runtime.timers import wait_within

log = logging.getLogger(__name__)

NO_RESPONDERS = "503"
StreamItem = StreamChunk | StreamDone | StreamError


class ReplyStream:
    """The messages of one reply stream, checked for order and gaps.

    A deque and at most one waiting future: cheaper than an `asyncio.Queue` for one reader.
    """

    __slots__ = ("_expected", "_messages", "_on_close", "_waiter", "finished")

    def __init__(self, on_close: Callable[[], object]) -> None:
        self._messages: deque[tuple[bytes, Headers | None]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close
        self._expected = 0
        self.finished = False

    def deliver(self, data: bytes, headers: Headers | None) -> None:
        """A message for this stream arrived (called by the mux)."""
        self._messages.append((data, headers))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Stop routing replies here."""
        self._on_close()

    def ready(self) -> bool:
        """Whether a message is already waiting (so `next` returns without waiting)."""
        return bool(self._messages)

    async def next(self, timeout: float) -> StreamItem:
        """The next message; raises `TimeoutError` when none arrives within `timeout` seconds."""
        if not self._messages:  # only then is a timer armed (not inside a burst)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await wait_within(self._waiter, timeout)
            finally:
                self._waiter = None
        data, headers = self._messages.popleft()
        if headers and headers.get("Status") == NO_RESPONDERS:
            self.finished = True
            raise SwitchyardError(ErrorCode.SERVICE_UNAVAILABLE, "no inference service is running")
        try:
            item = STREAM_MESSAGE.validate_json(data)
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
        self._hot = HotPath.attach(nc)
        self._prefix = nc.new_inbox()
        self._cut = len(self._prefix) + 1
        self._streams: dict[str, ReplyStream] = {}
        self._ids = itertools.count()
        self._sub: Subscription | None = None
        self._background = Background()

    async def start(self) -> None:
        """Subscribe the inbox wildcard."""
        self._sub = await self._hot.subscribe(f"{self._prefix}.*", self._on_message)

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._hot.forget(self._sub)

    def _on_message(self, subject: str, _reply: str, data: bytes, headers: Headers | None) -> None:
        stream = self._streams.get(subject[self._cut :])
        if stream is not None:
            stream.deliver(data, headers)

    async def send(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> ReplyStream:
        """Send a request to `subject`; its replies arrive on the returned stream (close it)."""
        token = str(next(self._ids))
        stream = ReplyStream(lambda: self._streams.pop(token, None))
        self._streams[token] = stream
        try:
            await self._hot.publish(
                subject, payload, reply=f"{self._prefix}.{token}", headers=headers
            )
        except Exception as exc:
            del self._streams[token]
            raise SwitchyardError(
                ErrorCode.SERVICE_UNAVAILABLE, f"NATS publish failed: {exc}"
            ) from exc
        return stream

    def cancel(self, envelope: Envelope, reason: str) -> None:
        """Tell inference to stop a request (fire and forget: safe from a cancelled task)."""
        message = CancelMessage(**envelope.header(), reason=reason)
        self._background.spawn(
            self._nc.publish(
                subjects.cancel(envelope.request_id), message.model_dump_json().encode()
            )
        )
