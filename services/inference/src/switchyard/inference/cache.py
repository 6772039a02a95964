"""Exact-match response cache in a NATS JetStream key-value bucket (NATS KV is the cache layer).

The key is a hash of the normalised request (tenant, kind, model, messages or prompt, sampling
parameters). Entries expire with the bucket's TTL.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

import orjson
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from switchyard.contracts import ChatRequestMessage, CompletionRequestMessage, Delta, Usage
from switchyard.contracts.openai import FinishReason
from switchyard.runtime.jetstream import key_value

log = logging.getLogger(__name__)

# Fields that change how an answer is delivered or attributed, not what it says.
_DELIVERY_FIELDS = {"stream", "stream_options", "user", "metadata", "store", "service_tier"}
# What the answer is about, as opposed to how it is sampled.
_CONTENT_FIELDS = {"messages", "prompt", "suffix", "tools", "tool_choice", "response_format"}


class CachedAnswer(BaseModel):
    """A whole answer, replayable as a stream."""

    model: str
    deltas: list[Delta]
    finish_reason: FinishReason
    usage: Usage


def cacheable(message: ChatRequestMessage | CompletionRequestMessage) -> bool:
    """Whether the answer may be stored and reused: asked for, or deterministic by default."""
    if message.cache == "off":
        return False
    return message.cache == "on" or message.body.temperature == 0


def cache_key(
    message: ChatRequestMessage | CompletionRequestMessage, model: str, *, loose: bool = False
) -> str:
    """The hash of the normalised request.

    A `loose` key leaves the sampling parameters out: it finds any earlier answer to the same
    conversation, which is what graceful degradation may serve when every deployment is down.
    """
    kind: Literal["chat", "completion"] = (
        "chat" if isinstance(message, ChatRequestMessage) else "completion"
    )
    body = message.body.model_dump(exclude=_DELIVERY_FIELDS, exclude_none=True)
    if loose:
        body = {k: v for k, v in body.items() if k in _CONTENT_FIELDS}
    body["model"] = model
    material = orjson.dumps([message.tenant_id, kind, loose, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(material).hexdigest()


class ResponseCache:
    """Reads and writes cached answers; a cache failure never fails a request."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, nc: Client, bucket: str, ttl: float) -> ResponseCache:
        """Bind to the bucket, creating it (with its TTL) on first use."""
        return cls(await key_value(nc.jetstream(), bucket, ttl))

    async def get(self, key: str) -> CachedAnswer | None:
        """The cached answer for `key`, if any."""
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        except Exception as exc:
            log.warning("cache read failed: %s", exc)
            return None
        if not entry.value:
            return None
        try:
            return CachedAnswer.model_validate_json(entry.value)
        except ValueError:
            return None

    async def put(self, keys: list[str], answer: CachedAnswer) -> None:
        """Store an answer under each of `keys`."""
        value = answer.model_dump_json(exclude_none=True).encode()
        try:
            for key in keys:
                await self._kv.put(key, value)
        except Exception as exc:
            log.warning("cache write failed: %s", exc)
