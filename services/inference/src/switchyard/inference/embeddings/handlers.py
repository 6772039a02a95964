"""The thin NATS handler of `llm.embed.v1`: hand the request over, reply to its inbox."""

from __future__ import annotations

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from switchyard.contracts import subjects
from switchyard.inference.embeddings.service import Embeddings
from switchyard.runtime.broker import nats_client
from switchyard.runtime.telemetry import context_from


def register_embeddings(broker: NatsBroker, embeddings: Embeddings) -> None:
    """Subscribe `llm.embed.v1` in the queue group `inference` (replicas share the load)."""

    # no_reply: the answer is published by the request's own task, so the subscription takes the
    # next message at once (and concurrent requests can share a micro-batch).
    @broker.subscriber(subjects.EMBED, queue=subjects.QUEUE_INFERENCE, no_reply=True)
    async def on_embed(msg: NatsMessage) -> None:
        inbox = msg.reply_to
        if not inbox:
            return  # nobody to answer: a request/reply subject published to without an inbox
        nc = nats_client(broker)

        async def reply(payload: bytes) -> None:
            await nc.publish(inbox, payload)

        embeddings.start(
            msg.body, reply, max_payload=nc.max_payload, context=context_from(msg.headers)
        )
