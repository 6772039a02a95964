"""HTTP routes: thin — validate, call the relay, translate the result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from switchyard.contracts import (
    ChatCompletionRequest,
    ChatRequestMessage,
    CompletionRequest,
    CompletionRequestMessage,
    EmbeddingRequest,
    EmbedRequestMessage,
    ErrorBody,
    ErrorCode,
    SwitchyardError,
    subjects,
)
from switchyard.contracts.messages import CacheMode
from switchyard.gateway.auth import Tenant
from switchyard.gateway.embeddings import embed, openai_embeddings
from switchyard.gateway.errors import error_response
from switchyard.gateway.http import JsonResponse, header
from switchyard.gateway.relay import BODY_JSON, ClientGone, Relay, until_disconnect
from switchyard.gateway.responses import Kind, answer_headers, collect, sse_events
from switchyard.gateway.sse import EventStreamResponse


async def get_relay(request: Request) -> Relay:
    """The relay born in the app's lifespan (async: a sync dependency costs a thread hop)."""
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
    body_json: bytes | None = request.scope["state"].get(BODY_JSON)
    try:
        if body.stream:
            exchange, first = await until_disconnect(
                request, relay.start(subject, message, body_json)
            )
            return EventStreamResponse(
                sse_events(kind, exchange, first, body), answer_headers(first)
            )
        return await until_disconnect(request, _complete(kind, relay, subject, message, body_json))
    except ClientGone:
        return CLIENT_CLOSED


async def _complete(
    kind: Kind,
    relay: Relay,
    subject: str,
    message: ChatRequestMessage | CompletionRequestMessage,
    body_json: bytes | None,
) -> Response:
    """A non-streamed answer: the whole stream gathered into one JSON body."""
    exchange, first = await relay.start(subject, message, body_json)
    try:
        result = await collect(kind, exchange, first)
    finally:
        exchange.close()
    return JsonResponse(result, headers=answer_headers(first))


def cache_mode(request: Request) -> CacheMode:
    """The client's `x-switchyard-cache` choice: auto (deterministic requests only), on, off."""
    raw = header(request, "x-switchyard-cache")
    value = "auto" if raw is None else raw.strip().lower()
    if value not in ("auto", "on", "off"):
        raise SwitchyardError(
            ErrorCode.INVALID_REQUEST,
            "x-switchyard-cache must be auto, on or off",
            param="x-switchyard-cache",
        )
    return value  # type: ignore[return-value]


@router.post("/v1/chat/completions", tags=["openai"], summary="Create a chat completion")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, tenant: Tenant, relay: RelayDep
) -> Response:
    """OpenAI-compatible chat completion; `stream: true` answers with server-sent events."""
    message = ChatRequestMessage(
        **relay.envelope(request, tenant), body=body, cache=cache_mode(request), batch=True
    )
    return await _generate("chat", request, relay, body, message)


@router.post("/v1/completions", tags=["openai"], summary="Create a text completion")
async def completions(
    body: CompletionRequest, request: Request, tenant: Tenant, relay: RelayDep
) -> Response:
    """OpenAI-compatible (legacy) text completion; `stream: true` answers with SSE."""
    message = CompletionRequestMessage(
        **relay.envelope(request, tenant), body=body, cache=cache_mode(request), batch=True
    )
    return await _generate("completion", request, relay, body, message)


@router.post("/v1/embeddings", tags=["openai"], summary="Create embeddings")
async def embeddings(
    body: EmbeddingRequest, request: Request, tenant: Tenant, relay: RelayDep
) -> Response:
    """OpenAI-compatible embeddings: one vector per input, as floats or base64 float32."""
    message = EmbedRequestMessage(**relay.envelope(request, tenant), body=body)
    reply = await embed(relay, message)
    return JsonResponse(openai_embeddings(reply, body.encoding_format))


@router.get("/v1/models", tags=["openai"], summary="List models")
async def list_models(request: Request, tenant: Tenant, relay: RelayDep) -> dict[str, Any]:
    """The models this deployment serves."""
    cards = await relay.models(tenant, request.state.request_id)
    admin = tenant in relay.settings.admin_tenant_set()
    exclude = None if admin else {"deployments"}
    return {
        "object": "list",
        "data": [c.model_dump(exclude=exclude, exclude_none=True) for c in cards],
    }


@router.get("/healthz", tags=["health"], summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], summary="Readiness")
async def readyz(relay: RelayDep) -> Response:
    """Ready while the NATS connection is up."""
    if relay.nc.is_connected:
        return JsonResponse({"status": "ready"})
    return error_response(ErrorBody.of(ErrorCode.SERVICE_UNAVAILABLE, "NATS is not connected"))
