"""The wire format of an OpenAI-compatible `POST /embeddings`: the body sent, the answer parsed."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.inference.embeddings.result import Embedded


def embeddings_payload(
    texts: list[str], model: str, *, dimensions: int | None, user: str | None
) -> bytes:
    """The JSON body of an upstream embeddings request (vectors asked for as floats)."""
    body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    if user is not None:
        body["user"] = user
    return orjson.dumps(body)


def _vector(raw: Any) -> list[float]:
    if isinstance(raw, str):  # some servers answer base64 whatever was asked
        packed = base64.b64decode(raw, validate=True)
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    if not isinstance(raw, list) or not all(isinstance(x, int | float) for x in raw):
        raise TypeError("an embedding is not a list of numbers")
    return [float(x) for x in raw]


def parse_embeddings(content: bytes, count: int) -> Embedded:
    """The vectors (in input order) and prompt tokens of an upstream answer to `count` inputs.

    Raises:
        SwitchyardError: `provider_bad_response` when the answer is not a well-formed list of
            `count` embeddings.
    """
    try:
        answer = orjson.loads(content)
        items = sorted(answer["data"], key=lambda item: int(item.get("index", 0)))
        vectors = [_vector(item["embedding"]) for item in items]
        usage = answer.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SwitchyardError(
            ErrorCode.PROVIDER_BAD_RESPONSE, f"malformed embeddings answer from upstream: {exc}"
        ) from exc
    if len(vectors) != count:
        raise SwitchyardError(
            ErrorCode.PROVIDER_BAD_RESPONSE,
            f"upstream returned {len(vectors)} embeddings for {count} inputs",
        )
    return Embedded(vectors, tokens)
