"""The hot routes (chat and text completions) served without FastAPI's per-request machinery.

FastAPI's router, dependency solver, exit stacks and middleware layers cost more gateway CPU than
everything else a request does (measured with py-spy: a third of the gateway's CPU under load).
For the two routes that carry nearly all traffic, the fast lane does what FastAPI would do —
authenticate and rate-limit with the same function as the `Tenant` dependency, validate the body
with the same model (pydantic's JSON mode, in one pass), map errors with the same handlers — and
then calls the very same route function. The routes stay declared on the FastAPI app, so the
OpenAPI docs and every other route are unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from switchyard.contracts import (
    ChatCompletionRequest,
    CompletionRequest,
    ErrorCode,
    SwitchyardError,
)
from switchyard.gateway.auth import admit, bearer_parts
from switchyard.gateway.errors import error_response, unexpected_error, validation_error
from switchyard.gateway.http import header
from switchyard.gateway.relay import BODY_JSON, Relay
from switchyard.gateway.routes import chat_completions, completions

Endpoint = Callable[..., Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class HotRoute:
    """A route the fast lane serves: its body model and its FastAPI route function."""

    model: type[BaseModel]
    endpoint: Endpoint


ROUTES: dict[tuple[str, str], HotRoute] = {
    ("POST", "/v1/chat/completions"): HotRoute(ChatCompletionRequest, chat_completions),
    ("POST", "/v1/completions"): HotRoute(CompletionRequest, completions),
}


class FastLane:
    """Serves the hot routes of `app` (its lifespan made `app.state.relay`, `.keys` and
    `.limiter`)."""

    def __init__(self, app: FastAPI, max_body_bytes: int) -> None:
        self._state = app.state
        self._max_body_bytes = max_body_bytes

    @staticmethod
    def route(scope: Scope) -> HotRoute | None:
        """The hot route `scope` asks for, if it is one."""
        return ROUTES.get((scope["method"], scope["path"]))

    async def __call__(self, route: HotRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (every failure as the structured error envelope)."""
        request = Request(scope, receive)
        try:
            response = await self._respond(route, request)
        except ClientDisconnect:
            return  # gone while sending its body: nobody to answer
        except SwitchyardError as exc:
            response = error_response(exc.body, exc.body.details.get("param"))
        except Exception as exc:
            response = unexpected_error(exc)
        await response(scope, receive, send)

    async def _respond(self, route: HotRoute, request: Request) -> Response:
        relay: Relay = self._state.relay
        scheme, key = bearer_parts(header(request, "authorization"))
        tenant = admit(self._state, scheme, key)
        raw = await self._body(request.receive)
        try:
            body = route.model.model_validate_json(raw)
        except ValidationError as exc:
            return validation_error(exc.errors(include_url=False))
        request.scope["state"][BODY_JSON] = raw  # travels to inference as it came (see Relay.start)
        return await route.endpoint(body=body, request=request, tenant=tenant, relay=relay)

    async def _body(self, receive: Receive) -> bytes:
        """The request body, refused past the size bound (a body sent without Content-Length
        is counted as it arrives; one with it was checked before it was read). Read from ASGI
        messages directly: `Request.stream()` is an async generator, which the event loop
        tracks and finalises (a weak reference and a hook call per request)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            part: bytes = message.get("body", b"")
            size += len(part)
            if size > self._max_body_bytes:
                raise SwitchyardError(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"The request body is larger than {self._max_body_bytes} bytes.",
                )
            parts.append(part)
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)
