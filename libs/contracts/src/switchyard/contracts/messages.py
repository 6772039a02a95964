"""Messages on the `llm.*` subjects, including the token-stream protocol.

A requester sends a request with a reply inbox. The responder publishes to that inbox chunk
messages with `seq` 0, 1, 2 … and then exactly one terminal message: `done` or `error`
(`partial=true` when chunks were already sent). Receivers check `seq` for gaps.

A requester that sets `batch` on its request accepts chunk messages that carry several fragments
(`delta`, then `more`): fragments that reached the responder together travel as one message.
`seq` counts messages, not fragments.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from switchyard.contracts.envelope import Envelope
from switchyard.contracts.errors import ErrorBody, ServiceReply
from switchyard.contracts.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    Delta,
    FinishReason,
    ModelCard,
    Usage,
)
from switchyard.contracts.retrieval import Citation

CacheMode = Literal["auto", "on", "off"]
CacheStatus = Literal["hit", "miss"]


class ChatRequestMessage(Envelope):
    """`llm.chat.v1`: a chat completion to generate, replied to as a stream."""

    body: ChatCompletionRequest
    cache: CacheMode = Field(
        default="auto", description="auto: cache only deterministic requests (temperature 0)."
    )
    batch: bool = Field(
        default=False, description="The requester reads `more` on chunk messages (see above)."
    )


class CompletionRequestMessage(Envelope):
    """`llm.completion.v1`: a text completion to generate, replied to as a stream."""

    body: CompletionRequest
    cache: CacheMode = "auto"
    batch: bool = Field(
        default=False, description="The requester reads `more` on chunk messages (see above)."
    )


class CancelMessage(Envelope):
    """`llm.cancel.v1.<request_id>`: the client went away; stop generating."""

    reason: str = "client_disconnected"


class ModelsRequest(Envelope):
    """`llm.models.v1`: list the models this tenant may use."""


class ModelsReply(ServiceReply):
    """Reply to `llm.models.v1`."""

    data: list[ModelCard] = Field(default_factory=list)


class StreamChunk(Envelope):
    """One fragment of a streamed answer (or several, in `more`, for requests that set `batch`).

    The first message of a stream also says how the answer is made (`cache`, `degraded`), so the
    gateway can put it in the response headers before relaying any token.
    """

    type: Literal["chunk"] = "chunk"
    seq: int = Field(ge=0)
    model: str
    delta: Delta
    more: list[Delta] | None = Field(
        default=None,
        description="Further fragments, in order, after `delta` (only if the request set `batch`).",
    )
    cache: CacheStatus | None = None
    degraded: list[str] | None = None
    citations: list[Citation] | None = None

    def fragments(self) -> list[Delta]:
        """Every fragment of this message, in order (`delta`, then `more`)."""
        return [self.delta, *self.more] if self.more else [self.delta]


class StreamDone(Envelope):
    """The successful end of a stream; with `deltas`, also the answer's last fragments."""

    type: Literal["done"] = "done"
    seq: int = Field(ge=0)
    model: str
    deltas: list[Delta] | None = Field(
        default=None,
        description=(
            "Fragments, in order, that arrived together with the end (only if the request set "
            "`batch`): the requester relays them before finishing. A short answer is one message."
        ),
    )
    finish_reason: FinishReason
    usage: Usage
    cache: CacheStatus | None = None
    degraded: list[str] | None = None
    citations: list[Citation] | None = None

    def fragments(self) -> list[Delta]:
        """The fragments that came with the end (often none)."""
        return self.deltas or []


class StreamError(Envelope):
    """The failed end of a stream; `partial` says chunks were already sent."""

    type: Literal["error"] = "error"
    seq: int = Field(ge=0)
    error: ErrorBody
    partial: bool = False


StreamMessage = Annotated[StreamChunk | StreamDone | StreamError, Field(discriminator="type")]
STREAM_MESSAGE: TypeAdapter[StreamChunk | StreamDone | StreamError] = TypeAdapter(StreamMessage)


class UsageEvent(Envelope):
    """`events.usage.v1`: what one request cost, published when it ends."""

    kind: Literal["chat", "completion", "embedding"]
    model: str
    deployment: str | None = None
    provider: str | None = None
    usage: Usage
    outcome: str = Field(description="`ok` or the error code.")
    cache: CacheStatus | None = None
    degraded: list[str] | None = None
    attempts: int = 0
    latency_ms: float = 0.0
    first_token_ms: float | None = None
