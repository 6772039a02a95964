"""Embeddings through inference (`llm.embed.v1`): retrieval never loads a model itself."""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from switchyard.contracts import (
    EmbeddingRequest,
    EmbedReply,
    EmbedRequestMessage,
    ErrorCode,
    SwitchyardError,
    deadline_in,
    subjects,
)


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
            try:
                msg = await self._client().request(
                    subjects.EMBED, message.model_dump_json().encode(), timeout=self._timeout
                )
            except NoRespondersError as exc:
                raise SwitchyardError(
                    ErrorCode.SERVICE_UNAVAILABLE, "no inference service is running"
                ) from exc
            except NatsTimeoutError as exc:
                raise SwitchyardError(
                    ErrorCode.SERVICE_UNAVAILABLE, "inference did not embed in time"
                ) from exc
            reply = EmbedReply.model_validate_json(msg.data)
            if reply.error is not None:
                raise SwitchyardError(reply.error.code, reply.error.message)
            vectors.extend(reply.data)
            resolved = reply.model or resolved
        return vectors, resolved
