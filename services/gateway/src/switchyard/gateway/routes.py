"""HTTP routes: thin — validate, call the relay, translate the result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse, Response

from switchyard.contracts import (
    ChatCompletionRequest,
    ChatRequestMessage,
    CompletionRequest,
    CompletionRequestMessage,
    ErrorBody,
    ErrorCode,
    subjects,
)
from switchyard.gateway.auth import Tenant
from switchyard.gateway.errors import error_response
from switchyard.gateway.relay import ClientGone, Relay, until_disconnect
from switchyard.gateway.responses import Kind, collect, sse_events
from switchyard.gateway.sse import EventStreamResponse


def get_relay(request: Request) -> Relay:
    """The relay born in the app's lifespan."""
    relay: Relay = request.app.state.relay
    return relay


RelayDep = Annotated[Relay, Depends(get_relay)]
router = APIRouter()

CLIENT_CLOSED = Response(status_code=499)


async def _generate(
    kind: Kind,
    request: Request,
    relay: Relay,
    body: ChatCompletionRequest | CompletionRequest,
    message: ChatRequestMessage | CompletionRequestMessage,
) -> Response:
    subject = subjects.CHAT if kind == "chat" else subjects.COMPLETION
    try:
        exchange, first = await until_disconnect(request, relay.start(subject, message))
        if body.stream:
            return EventStreamResponse(sse_events(kind, exchange, first, body))
        try:
            result = await until_disconnect(request, collect(kind, exchange, first))
        finally:
            exchange.close()
    except ClientGone:
        return CLIENT_CLOSED
    return ORJSONResponse(result)


@router.post("/v1/chat/completions", tags=["openai"], summary="Create a chat completion")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, tenant: Tenant, relay: RelayDep
) -> Response:
    """OpenAI-compatible chat completion; `stream: true` answers with server-sent events."""
    message = ChatRequestMessage(**relay.envelope(request, tenant), body=body)
    return await _generate("chat", request, relay, body, message)


@router.post("/v1/completions", tags=["openai"], summary="Create a text completion")
async def completions(
    body: CompletionRequest, request: Request, tenant: Tenant, relay: RelayDep
) -> Response:
    """OpenAI-compatible (legacy) text completion; `stream: true` answers with SSE."""
    message = CompletionRequestMessage(**relay.envelope(request, tenant), body=body)
    return await _generate("completion", request, relay, body, message)


@router.get("/v1/models", tags=["openai"], summary="List models")
async def list_models(request: Request, tenant: Tenant, relay: RelayDep) -> dict[str, Any]:
    """The models this deployment serves."""
    cards = await relay.models(tenant, request.state.request_id)
    return {"object": "list", "data": [card.model_dump() for card in cards]}


@router.get("/healthz", tags=["health"], summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], summary="Readiness")
async def readyz(relay: RelayDep) -> Response:
    """Ready while the NATS connection is up."""
    if relay.nc.is_connected:
        return ORJSONResponse({"status": "ready"})
    return error_response(ErrorBody.of(ErrorCode.SERVICE_UNAVAILABLE, "NATS is not connected"))
