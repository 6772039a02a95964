"""The hot routes (chat and text completions) served without FastAPI's per-request machinery.

FastAPI's router, dependency solver, exit stacks and middleware layers cost more gateway CPU than
everything else a request does (measured with py-spy: a third of the gateway's CPU under load).
For the two routes that carry nearly all traffic, the fast lane does what FastAPI would do —
authenticate with the same function as the `Tenant` dependency, validate the body with the same
model (pydantic's JSON mode, in one pass), map errors with the same handlers — and then calls the
very same route function. The routes stay declared on the FastAPI app, so the OpenAPI docs and
every other route are unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from switchyard.contracts import ChatCompletionRequest, CompletionRequest, SwitchyardError
from switchyard.gateway.auth import authenticate, bearer_parts
from switchyard.gateway.errors import error_response, unexpected_error, validation_error
from switchyard.gateway.relay import Relay
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
    """Serves the hot routes of `app` (its lifespan made `app.state.relay` and `.keys`)."""

    def __init__(self, app: FastAPI) -> None:
        self._state = app.state

    @staticmethod
    def route(scope: Scope) -> HotRoute | None:
        """The hot route `scope` asks for, if it is one."""
        return ROUTES.get((scope["method"], scope["path"]))

    async def __call__(self, route: HotRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (every failure as the structured error envelope)."""
        request = Request(scope, receive)
        try:
            response = await self._respond(route, request)
        except SwitchyardError as exc:
            response = error_response(exc.body, exc.body.details.get("param"))
        except Exception as exc:
            response = unexpected_error(exc)
        await response(scope, receive, send)

    async def _respond(self, route: HotRoute, request: Request) -> Response:
        relay: Relay = self._state.relay
        scheme, key = bearer_parts(request.headers.get("authorization"))
        tenant = authenticate(self._state.keys, scheme, key)
        raw = await request.body()
        try:
            body = route.model.model_validate_json(raw)
        except ValidationError as exc:
            return validation_error(exc.errors(include_url=False))
        return await route.endpoint(body=body, request=request, tenant=tenant, relay=relay)
