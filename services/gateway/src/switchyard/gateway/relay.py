"""The gateway's service layer: send a request over NATS and follow its reply stream.

An `Exchange` is one request's round trip. It enforces the time-to-first-token, idle and absolute
deadlines on the gateway side (so a lost inference replica can never hang a client) and announces
a cancel when it ends before its stream did (client gone, timeout, broken stream).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import orjson
from fastapi import Request
from nats.aio.client import Client
from pydantic import BaseModel

from switchyard.contracts import (
    ChatRequestMessage,
    CompletionRequestMessage,
    EmbedReply,
    EmbedRequestMessage,
    Envelope,
    EnvelopeFields,
    ErrorCode,
    ModelCard,
    ModelsReply,
    ModelsRequest,
    StreamError,
    SwitchyardError,
    deadline_in,
    subjects,
)
from switchyard.gateway.config import GatewaySettings
from switchyard.gateway.http import header, on_disconnect
from switchyard.gateway.streams import ReplyStream, StreamItem, StreamMux
from switchyard.runtime.rpc import Reply, call
from switchyard.runtime.telemetry import trace_headers

T = TypeVar("T")

# Where the fast lane leaves a request's validated JSON body in the ASGI scope's state.
BODY_JSON = "body_json"


class ClientGone(Exception):
    """The HTTP client disconnected."""


class Exchange:
    """One request's reply stream, with the gateway's timeouts."""

    def __init__(
        self, relay: Relay, envelope: Envelope, stream: ReplyStream, *, streamed: bool = True
    ) -> None:
        self._relay = relay
        self.envelope = envelope
        self._stream = stream
        self._first = True
        # A non-streamed answer may come whole at the end (upstream called non-streamed): its
        # first message is bounded by `response_timeout`, not by `first_token_timeout`.
        self._streamed = streamed
        self.started = time.monotonic()
        self.first_at: float | None = None

    async def next(self) -> StreamItem:
        """The next message of the stream; an error message is raised as `SwitchyardError`."""
        settings = self._relay.settings
        remaining = self.envelope.remaining()
        if remaining <= 0:
            raise SwitchyardError(ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed")
        if not self._first:
            limit = settings.idle_timeout
        elif self._streamed:
            limit = settings.first_token_timeout
        else:
            limit = settings.response_timeout
        try:
            item = await self._stream.next(min(limit, remaining))
        except TimeoutError:
            if remaining <= limit:
                raise SwitchyardError(
                    ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed"
                ) from None
            what = (
                "next chunk" if not self._first else "first token" if self._streamed else "answer"
            )
            raise SwitchyardError(
                ErrorCode.PROVIDER_TIMEOUT, f"no {what} within {limit:g}s", timeout=limit
            ) from None
        if self._first:
            self.first_at = time.monotonic()
        self._first = False
        if isinstance(item, StreamError):
            error = SwitchyardError(item.error.code, item.error.message, **item.error.details)
            error.body = item.error
            raise error
        return item

    def ready(self) -> bool:
        """Whether the next message has already arrived."""
        return self._stream.ready()

    def close(self, reason: str = "client_disconnected") -> None:
        """Release the stream; if it has not ended, tell inference to stop."""
        if not self._stream.finished:
            self._relay.mux.cancel(self.envelope, reason)
        self._stream.close()


class Relay:
    """Turns validated HTTP requests into NATS requests and reply streams."""

    def __init__(self, nc: Client, mux: StreamMux, settings: GatewaySettings) -> None:
        self.nc = nc
        self.mux = mux
        self.settings = settings

    def envelope(self, request: Request, tenant: str) -> EnvelopeFields:
        """The header fields of a new request: its id, tenant and absolute deadline."""
        timeout = self.settings.request_timeout
        raw = header(request, "x-switchyard-timeout")
        if raw is not None:
            try:
                asked = float(raw)
            except ValueError:
                asked = -1.0
            if not 0 < asked <= timeout:
                raise SwitchyardError(
                    ErrorCode.INVALID_REQUEST,
                    f"x-switchyard-timeout must be a number of seconds in (0, {timeout:g}]",
                    param="x-switchyard-timeout",
                )
            timeout = asked
        return {
            "request_id": request.scope["state"]["request_id"],
            "tenant_id": tenant,
            "deadline": deadline_in(timeout),
        }

    async def start(
        self,
        subject: str,
        message: ChatRequestMessage | CompletionRequestMessage,
        body_json: bytes | None = None,
    ) -> tuple[Exchange, StreamItem]:
        """Send the request and wait for its first message (a chunk, or done for an empty answer).

        `body_json`: the JSON that `message.body` was validated from, if there is one. It goes to
        inference as it came instead of being serialised again: inference validates the same
        bytes with the same model, so it gets the same body (and the fields the client set).
        Errors that come before any token are raised, so they become proper HTTP statuses.
        """
        if body_json is None:
            # Only the fields that were set: the defaults are the contract's.
            payload = message.model_dump_json(exclude_unset=True).encode()
        else:
            # The envelope's fields as the model holds them (checked when it was made): orjson
            # writes the same bytes as `model_dump_json(exclude={"body"})` in half the time.
            fields = {name: value for name, value in message.__dict__.items() if name != "body"}
            head = orjson.dumps(fields, option=orjson.OPT_UTC_Z)
            payload = b"".join((head[:-1], b',"body":', body_json, b"}"))
        stream = await self.mux.send(subject, payload, trace_headers())
        exchange = Exchange(self, message, stream, streamed=message.body.stream)
        try:
            first = await exchange.next()
        except BaseException:
            exchange.close("gateway_error")
            raise
        return exchange, first

    async def call(
        self, subject: str, message: BaseModel, reply_type: type[Reply], timeout: float
    ) -> Reply:
        """Request/reply with the service that owns `subject` (its error is raised)."""
        service = "inference" if subject.startswith("llm.") else subject.split(".", 1)[0]
        return await call(self.nc, subject, message, reply_type, timeout, service)

    async def models(self, tenant: str, request_id: str) -> list[ModelCard]:
        """The models inference serves."""
        timeout = self.settings.control_timeout
        request = ModelsRequest(
            request_id=request_id, tenant_id=tenant, deadline=deadline_in(timeout)
        )
        return (await self.call(subjects.MODELS, request, ModelsReply, timeout)).data

    async def embed(self, message: EmbedRequestMessage) -> EmbedReply:
        """Ask inference for the embeddings of `message` (request/reply on `llm.embed.v1`).

        Inference enforces the deadline itself; the gateway waits a moment longer so that its
        `deadline_exceeded` reply, not a bare timeout, is what the client sees.
        """
        return await self.call(
            subjects.EMBED, message, EmbedReply, max(message.remaining(), 0) + 1.0
        )


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work` in this task; if the HTTP client disconnects first, cancel it and raise
    `ClientGone` (the work itself runs inline; see `http.on_disconnect`)."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    def leave() -> None:
        nonlocal gone
        gone = True
        current.cancel()

    stop = on_disconnect(request.receive, leave)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        current.uncancel()
        raise ClientGone from None
    finally:
        stop()
