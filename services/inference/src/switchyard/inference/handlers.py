"""Thin NATS handlers: decode and validate, hand over to the service layer, reply."""

from __future__ import annotations

import contextlib
import logging

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from switchyard.contracts import (
    ChatRequestMessage,
    CompletionRequestMessage,
    ErrorBody,
    ErrorCode,
    ModelsReply,
    ModelsRequest,
    StreamError,
    deadline_in,
    subjects,
)
from switchyard.inference.generation import Generations
from switchyard.runtime.hotpath import Headers, HotPath
from switchyard.runtime.lifecycle import Background
from switchyard.runtime.telemetry import context_from

log = logging.getLogger(__name__)


class GenerationHandlers:
    """The hot path: `llm.chat.v1`, `llm.completion.v1` and `llm.cancel.v1.*` on the client's
    `HotPath` (each message handed over as it is read). Each handler only validates and starts a
    task; FastStream's per-message dependency injection cost more CPU than the rest of a
    request's handling (measured)."""

    def __init__(self, nc: Client, generations: Generations) -> None:
        self._hot = HotPath.attach(nc)
        self._generations = generations
        self._subscriptions: list[Subscription] = []
        self._background = Background()

    async def subscribe(self) -> None:
        """Start taking requests (queue group `inference`; cancels reach every replica)."""
        queue = subjects.QUEUE_INFERENCE
        hot = self._hot
        self._subscriptions = [
            await hot.subscribe(subjects.CHAT, self._on_chat, queue=queue),
            await hot.subscribe(subjects.COMPLETION, self._on_completion, queue=queue),
            await hot.subscribe(subjects.CANCEL_ALL, self._on_cancel),
        ]

    async def stop_taking_requests(self) -> None:
        """Leave the queue group so other replicas get new requests; cancels still arrive."""
        await self._unsubscribe(self._subscriptions[:2])

    async def unsubscribe(self) -> None:
        """Stop listening to everything."""
        await self._unsubscribe(self._subscriptions[2:])

    async def _unsubscribe(self, subscriptions: list[Subscription]) -> None:
        for subscription in subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            self._hot.forget(subscription)

    def _on_chat(self, _subject: str, reply: str, data: bytes, headers: Headers | None) -> None:
        self._start(ChatRequestMessage, reply, data, headers)

    def _on_completion(
        self, _subject: str, reply: str, data: bytes, headers: Headers | None
    ) -> None:
        self._start(CompletionRequestMessage, reply, data, headers)

    def _on_cancel(self, subject: str, _reply: str, _data: bytes, _headers: Headers | None) -> None:
        request_id = subject.rsplit(".", 1)[-1]
        if self._generations.cancel(request_id):
            log.info("cancelled on client request", extra={"request_id": request_id})

    def _start(
        self,
        kind: type[ChatRequestMessage | CompletionRequestMessage],
        reply: str,
        data: bytes,
        headers: Headers | None,
    ) -> None:
        try:
            request = kind.model_validate_json(data)
        except ValidationError as exc:
            log.warning("invalid %s message: %s", kind.__name__, exc.errors(include_url=False)[:3])
            if reply:
                error = StreamError(
                    request_id="invalid",
                    tenant_id="unknown",
                    deadline=deadline_in(5),
                    seq=0,
                    error=ErrorBody.of(
                        ErrorCode.INVALID_REQUEST,
                        f"invalid {kind.__name__}",
                        errors=exc.errors(include_url=False, include_context=False)[:10],
                    ),
                )
                self._background.spawn(self._hot.publish(reply, error.model_dump_json().encode()))
            return
        self._generations.start(request, reply, context_from(headers))


def register(broker: NatsBroker, generations: Generations) -> None:
    """Subscribe the control handlers with FastStream (queue group `inference`)."""

    @broker.subscriber(subjects.MODELS, queue=subjects.QUEUE_INFERENCE)
    async def on_models(msg: NatsMessage) -> ModelsReply:
        try:
            ModelsRequest.model_validate_json(msg.body)
        except ValidationError as exc:
            return ModelsReply(error=ErrorBody.of(ErrorCode.INVALID_REQUEST, str(exc)))
        return ModelsReply(data=generations.models())
