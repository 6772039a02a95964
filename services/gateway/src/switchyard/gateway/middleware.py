"""The gateway's outermost ASGI layer: a request id and a trace on every request, a bound on
body size, and the hot routes handed to the fast lane (everything else to FastAPI)."""

from __future__ import annotations

import os

import orjson
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchyard.contracts import ErrorBody, ErrorCode
from switchyard.gateway.errors import openai_error
from switchyard.gateway.fastlane import FastLane
from switchyard.gateway.http import HEADERS
from switchyard.runtime.logging import request_id_var
from switchyard.runtime.telemetry import context_from, current_span, trace_id_hex

tracer = trace.get_tracer("switchyard.gateway")


class RequestContext:
    """Gives each HTTP request an id and a trace span (`x-request-id`, `x-trace-id` on the
    response; a client's W3C `traceparent` is honoured), collects its headers once for the
    layers below (`http.header`) and rejects huge bodies."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, fast_lane: FastLane | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.fast_lane = fast_lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = os.urandom(16).hex()  # 128 random bits, as uuid4().hex without the UUID
        scope.setdefault("state", {})["request_id"] = request_id
        request_id_var.set(request_id)
        # One pass over the headers for everything the gateway reads of them (first one wins).
        headers = dict(reversed(scope["headers"]))
        scope["state"][HEADERS] = headers
        parent = headers.get(b"traceparent")
        context = context_from({"traceparent": parent.decode("latin-1")}) if parent else None
        with current_span(
            tracer,
            f"{scope['method']} {scope['path']}",
            context=context,
            kind=trace.SpanKind.SERVER,
            attributes={"switchyard.request_id": request_id},
        ):
            await self._handle(scope, receive, send, request_id, headers)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        headers: dict[bytes, bytes],
    ) -> None:
        ids = [(b"x-request-id", request_id.encode())]
        if (trace_id := trace_id_hex()) is not None:
            ids.append((b"x-trace-id", trace_id.encode()))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *ids]
            await send(message)

        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            error = ErrorBody.of(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"The request body is larger than {self.max_body_bytes} bytes.",
            )
            body = orjson.dumps(openai_error(error))
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})
            return
        if self.fast_lane is not None and (route := self.fast_lane.route(scope)) is not None:
            await self.fast_lane(route, scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)
