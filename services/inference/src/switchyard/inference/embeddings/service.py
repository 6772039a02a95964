"""The embeddings service layer: resolve the model, embed within the deadline, reply.

Each request runs as its own task (so a slow upstream never holds up the subscription, and
concurrent local requests can meet in the micro-batcher). Every failure becomes an `EmbedReply`
with a structured error; nothing escapes to the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from opentelemetry.context import Context
from pydantic import ValidationError

from switchyard.contracts import (
    EmbeddingRequest,
    EmbeddingUsage,
    EmbedReply,
    EmbedRequestMessage,
    ErrorBody,
    ErrorCode,
    SwitchyardError,
)
from switchyard.inference.config import Deployment, InferenceSettings, ModelEntry
from switchyard.inference.embeddings.local import LocalEmbedder, minilm_path
from switchyard.inference.embeddings.models import EmbeddingModels
from switchyard.inference.embeddings.result import Embedded
from switchyard.inference.providers.openai import OpenAIProvider
from switchyard.runtime.logging import request_id_var

log = logging.getLogger(__name__)
tracer = trace.get_tracer("switchyard.inference")

Reply = Callable[[bytes], Awaitable[None]]


class Embeddings:
    """Serves `llm.embed.v1` from the embedding models of the model table.

    Args:
        models: the embedding-model resolver.
        local: the local model, when a local embedding deployment exists.
        upstream: the OpenAI-compatible client, when an `openai` embedding deployment exists.
    """

    def __init__(
        self,
        models: EmbeddingModels,
        local: LocalEmbedder | None = None,
        upstream: OpenAIProvider | None = None,
    ) -> None:
        self._models = models
        self._local = local
        self._upstream = upstream
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True

    @classmethod
    async def load(cls, settings: InferenceSettings, entries: dict[str, ModelEntry]) -> Embeddings:
        """Build the service for the table's embedding models, loading the local one if used.

        Raises:
            ValueError: an embedding model is deployed on a provider that cannot embed.
        """
        providers = {
            d.provider for e in entries.values() if e.kind == "embedding" for d in e.deployments
        }
        if unsupported := providers - {"local", "openai"}:
            raise ValueError(f"providers {sorted(unsupported)} cannot serve embedding models")
        local = None
        if "local" in providers:
            local = LocalEmbedder(
                minilm_path(),
                threads=settings.embed_threads,
                max_batch=settings.embed_max_batch,
                max_wait=settings.embed_max_wait_ms / 1000,
                max_queue=settings.embed_queue,
            )
            await local.load()
        upstream = OpenAIProvider() if "openai" in providers else None
        return cls(EmbeddingModels(entries), local, upstream)

    def start(
        self, raw: bytes, reply: Reply, *, max_payload: int, context: Context | None = None
    ) -> None:
        """Answer the request in `raw` through `reply`, in a task of its own.

        Args:
            raw: the `EmbedRequestMessage` as received.
            reply: sends the encoded `EmbedReply` to the requester.
            max_payload: largest message the connection may publish; a bigger answer becomes
                a `payload_too_large` error instead of a reply that would never arrive.
            context: the trace the request belongs to.
        """
        task = asyncio.create_task(self._answer(raw, reply, max_payload, context))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> None:
        """Stop accepting; give running requests `timeout` seconds to answer."""
        self._accepting = False
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def aclose(self) -> None:
        """Cancel what still runs and release the model and connections."""
        for task in list(self._tasks):
            task.cancel()
        if self._local is not None:
            await self._local.aclose()
        if self._upstream is not None:
            await self._upstream.aclose()

    async def _answer(
        self, raw: bytes, reply: Reply, max_payload: int, context: Context | None
    ) -> None:
        with tracer.start_as_current_span("embed", context=context, kind=trace.SpanKind.CONSUMER):
            answer = await self.handle(raw)
            payload = answer.model_dump_json().encode()
            if len(payload) > max_payload:
                payload = _too_large(len(answer.data), len(payload), max_payload)
            try:
                await reply(payload)
            except Exception:
                log.exception("could not send the embeddings reply")

    async def handle(self, raw: bytes) -> EmbedReply:
        """Decode, validate and answer one request; errors come back inside the reply."""
        try:
            message = EmbedRequestMessage.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            log.warning("invalid EmbedRequestMessage: %s", errors[:3])
            return EmbedReply(
                error=ErrorBody.of(
                    ErrorCode.INVALID_REQUEST, "invalid EmbedRequestMessage", errors=errors[:10]
                )
            )
        request_id_var.set(message.request_id)
        return await self.embed(message)

    async def embed(self, message: EmbedRequestMessage) -> EmbedReply:
        """Embed the message's inputs before its deadline; never raises (except cancellation)."""
        if not self._accepting:
            return _error(ErrorCode.SERVICE_UNAVAILABLE, "inference is shutting down")
        if message.expired():
            return _error(ErrorCode.DEADLINE_EXCEEDED, "deadline passed before start")
        try:
            async with asyncio.timeout(message.remaining()):
                name, entry = self._models.resolve(message.body.model)
                result = await self._embed(name, entry, message.body)
        except SwitchyardError as exc:
            log.info("embedding refused: %s", exc.body.message, extra={"code": exc.code})
            return EmbedReply(error=exc.body)
        except TimeoutError:
            return _error(ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed")
        except Exception:
            log.exception("embedding crashed")
            return _error(ErrorCode.INTERNAL_ERROR, "internal error in inference")
        tokens = result.prompt_tokens
        return EmbedReply(
            data=result.vectors,
            model=name,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    async def _embed(self, name: str, entry: ModelEntry, body: EmbeddingRequest) -> Embedded:
        """Try the deployments in priority order; a retryable failure moves on to the next."""
        deployments = sorted(entry.deployments, key=lambda d: d.priority)
        for position, deployment in enumerate(deployments):
            try:
                return await self._on(deployment, name, body)
            except SwitchyardError as exc:
                if not exc.body.retryable or position == len(deployments) - 1:
                    raise
                log.warning(
                    "embedding deployment failed; trying the next",
                    extra={"deployment": deployment.name, "code": exc.code},
                )
        raise AssertionError("a model entry has at least one deployment")

    async def _on(self, deployment: Deployment, name: str, body: EmbeddingRequest) -> Embedded:
        texts = body.texts()
        if deployment.provider == "local" and self._local is not None:
            if body.dimensions is not None and body.dimensions != self._local.dimensions:
                raise SwitchyardError(
                    ErrorCode.INVALID_REQUEST,
                    f"The model '{name}' makes vectors of {self._local.dimensions} dimensions "
                    f"and cannot shorten them; omit `dimensions` or set it to "
                    f"{self._local.dimensions}.",
                    param="dimensions",
                )
            return await self._local.embed(texts)
        if deployment.provider == "openai" and self._upstream is not None:
            return await self._upstream.embed(
                texts, deployment, name=name, dimensions=body.dimensions, user=body.user
            )
        raise SwitchyardError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"provider {deployment.provider!r} does not serve embeddings here",
        )


def _error(code: ErrorCode, message: str) -> EmbedReply:
    return EmbedReply(error=ErrorBody.of(code, message))


def _too_large(inputs: int, size: int, limit: int) -> bytes:
    message = (
        f"the embeddings of {inputs} inputs take {size} bytes, more than one message may carry "
        f"({limit}); send fewer inputs per request"
    )
    return _error(ErrorCode.PAYLOAD_TOO_LARGE, message).model_dump_json().encode()
