"""ASGI middleware: a request id on every response, and a bound on body size."""

from __future__ import annotations

import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchyard.contracts import ErrorBody, ErrorCode
from switchyard.gateway.errors import openai_error


class RequestContext:
    """Gives each HTTP request an id (`x-request-id` on the response) and rejects huge bodies."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        length = dict(scope["headers"]).get(b"content-length")
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
        await self.app(scope, receive, send_with_id)
