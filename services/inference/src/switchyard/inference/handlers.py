"""Thin NATS handlers: decode and validate, hand over to the service layer, reply."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
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


def register(broker: NatsBroker, generations: Generations) -> None:
    """Subscribe the inference handlers (queue group `inference`; cancels reach every replica)."""

    async def start(
        kind: type[ChatRequestMessage | CompletionRequestMessage], msg: NatsMessage
    ) -> None:
        try:
            request = kind.model_validate_json(msg.body)
        except ValidationError as exc:
            log.warning("invalid %s message: %s", kind.__name__, exc.errors(include_url=False)[:3])
            if msg.reply_to:
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
                await broker.publish(error.model_dump_json().encode(), msg.reply_to)
            return
        generations.start(request, msg.reply_to, context_from(msg.headers))

    @broker.subscriber(subjects.CHAT, queue=subjects.QUEUE_INFERENCE, no_reply=True)
    async def on_chat(msg: NatsMessage) -> None:
        await start(ChatRequestMessage, msg)

    @broker.subscriber(subjects.COMPLETION, queue=subjects.QUEUE_INFERENCE, no_reply=True)
    async def on_completion(msg: NatsMessage) -> None:
        await start(CompletionRequestMessage, msg)

    @broker.subscriber(subjects.CANCEL_ALL, no_reply=True)
    async def on_cancel(msg: NatsMessage) -> None:
        request_id = msg.raw_message.subject.rsplit(".", 1)[-1]
        if generations.cancel(request_id):
            log.info("cancelled on client request", extra={"request_id": request_id})

    @broker.subscriber(subjects.MODELS, queue=subjects.QUEUE_INFERENCE)
    async def on_models(msg: NatsMessage) -> ModelsReply:
        try:
            ModelsRequest.model_validate_json(msg.body)
        except ValidationError as exc:
            return ModelsReply(error=ErrorBody.of(ErrorCode.INVALID_REQUEST, str(exc)))
        return ModelsReply(data=generations.models())
