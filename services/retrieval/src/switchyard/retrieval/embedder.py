"""Embeddings through inference (`llm.embed.v1`): retrieval never loads a model itself."""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client

from switchyard.contracts import (
    EmbeddingRequest,
    EmbedReply,
    EmbedRequestMessage,
    deadline_in,
    subjects,
)
from switchyard.runtime.rpc import call


class Embedder:
    """Embeds texts in batches; a failure is a `SwitchyardError` with inference's code."""

    def __init__(self, client: Callable[[], Client], batch: int, timeout: float) -> None:
        self._client = client
        self._batch = batch
        self._timeout = timeout

    async def embed(
        self, texts: list[str], model: str, tenant: str, request_id: str
    ) -> tuple[list[list[float]], str]:
        """One vector per text (in order) and the model's resolved name."""
        vectors: list[list[float]] = []
        resolved = model
        for start in range(0, len(texts), self._batch):
            message = EmbedRequestMessage(
                request_id=request_id,
                tenant_id=tenant,
                deadline=deadline_in(self._timeout),
                body=EmbeddingRequest(model=model, input=texts[start : start + self._batch]),
            )
            reply = await call(
                self._client(), subjects.EMBED, message, EmbedReply, self._timeout, "inference"
            )
            vectors.extend(reply.data)
            resolved = reply.model or resolved
        return vectors, resolved
