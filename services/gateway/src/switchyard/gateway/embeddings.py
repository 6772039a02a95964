"""`POST /v1/embeddings`: relay the inputs to inference, answer in OpenAI's shape.

A NATS message is capped (1 MiB by default), and a reply of vectors grows with every input, so a
long input list travels as several `llm.embed.v1` requests of `CHUNK_INPUTS` inputs each. They run
concurrently (inference's micro-batcher joins them again on the local model) and their vectors
are put back together in input order.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any, Final

from switchyard.contracts import EmbeddingUsage, EmbedReply, EmbedRequestMessage
from switchyard.contracts.embeddings import EncodingFormat
from switchyard.gateway.relay import Relay

CHUNK_INPUTS: Final = 16
"""Inputs per NATS request: 16 vectors of even 3072 floats stay well under 1 MiB."""

CHUNKS_AT_ONCE: Final = 8
"""NATS requests one HTTP request may have in flight (bounds the burst sent upstream)."""


def float32_base64(vector: list[float]) -> str:
    """A vector as little-endian float32 bytes, base64-encoded (what OpenAI's SDKs decode)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def openai_embeddings(reply: EmbedReply, encoding_format: EncodingFormat) -> dict[str, Any]:
    """The OpenAI response body: `{"object": "list", "data": [...], "model", "usage"}`."""
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": float32_base64(vector) if encoding_format == "base64" else vector,
        }
        for index, vector in enumerate(reply.data)
    ]
    return {"object": "list", "data": data, "model": reply.model, "usage": reply.usage.model_dump()}


async def embed(relay: Relay, message: EmbedRequestMessage) -> EmbedReply:
    """The embeddings of every input of `message`, in input order, in as many requests as needed.

    Raises:
        SwitchyardError: the first failure of any part (the other parts are then cancelled).
    """
    texts = message.body.texts()
    if len(texts) <= CHUNK_INPUTS:
        return await relay.embed(message)
    gate = asyncio.Semaphore(CHUNKS_AT_ONCE)

    async def part(index: int, start: int) -> EmbedReply:
        body = message.body.model_copy(update={"input": texts[start : start + CHUNK_INPUTS]})
        sub = message.model_copy(
            update={"request_id": f"{message.request_id}-{index}", "body": body}
        )
        async with gate:
            return await relay.embed(sub)

    tasks = [
        asyncio.ensure_future(part(index, start))
        for index, start in enumerate(range(0, len(texts), CHUNK_INPUTS))
    ]
    try:
        replies = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    tokens = sum(reply.usage.prompt_tokens for reply in replies)
    return EmbedReply(
        data=[vector for reply in replies for vector in reply.data],
        model=replies[0].model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
