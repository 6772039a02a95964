"""Thin NATS handlers: decode and validate, hand over to the service layer, reply."""

from __future__ import annotations

import contextlib
import logging

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.aio.client import Client
from nats.aio.msg import Msg
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
from switchyard.runtime.telemetry import context_from

log = logging.getLogger(__name__)


class GenerationHandlers:
    """The hot path: `llm.chat.v1`, `llm.completion.v1` and `llm.cancel.v1.*` on plain nats-py
    subscriptions. Each handler only validates and starts a task; FastStream's per-message
    dependency injection cost more CPU than the rest of a request's handling (measured)."""

    def __init__(self, nc: Client, generations: Generations) -> None:
        self._nc = nc
        self._generations = generations
        self._subscriptions: list[Subscription] = []

    async def subscribe(self) -> None:
        """Start taking requests (queue group `inference`; cancels reach every replica)."""
        queue = subjects.QUEUE_INFERENCE
        self._subscriptions = [
            await self._nc.subscribe(subjects.CHAT, queue=queue, cb=self._on_chat),
            await self._nc.subscribe(subjects.COMPLETION, queue=queue, cb=self._on_completion),
            await self._nc.subscribe(subjects.CANCEL_ALL, cb=self._on_cancel),
        ]

    async def stop_taking_requests(self) -> None:
        """Leave the queue group so other replicas get new requests; cancels still arrive."""
        for subscription in self._subscriptions[:2]:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def unsubscribe(self) -> None:
        """Stop listening to everything."""
        for subscription in self._subscriptions[2:]:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _on_chat(self, msg: Msg) -> None:
        await self._start(ChatRequestMessage, msg)

    async def _on_completion(self, msg: Msg) -> None:
        await self._start(CompletionRequestMessage, msg)

    async def _on_cancel(self, msg: Msg) -> None:
        request_id = msg.subject.rsplit(".", 1)[-1]
        if self._generations.cancel(request_id):
            log.info("cancelled on client request", extra={"request_id": request_id})

    async def _start(
        self, kind: type[ChatRequestMessage | CompletionRequestMessage], msg: Msg
    ) -> None:
        try:
            request = kind.model_validate_json(msg.data)
        except ValidationError as exc:
            log.warning("invalid %s message: %s", kind.__name__, exc.errors(include_url=False)[:3])
            if msg.reply:
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
                await self._nc.publish(msg.reply, error.model_dump_json().encode())
            return
        self._generations.start(request, msg.reply, context_from(msg.headers))


def register(broker: NatsBroker, generations: Generations) -> None:
    """Subscribe the control handlers with FastStream (queue group `inference`)."""

    @broker.subscriber(subjects.MODELS, queue=subjects.QUEUE_INFERENCE)
    async def on_models(msg: NatsMessage) -> ModelsReply:
        try:
            ModelsRequest.model_validate_json(msg.body)
        except ValidationError as exc:
            return ModelsReply(error=ErrorBody.of(ErrorCode.INVALID_REQUEST, str(exc)))
        return ModelsReply(data=generations.models())
