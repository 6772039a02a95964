"""The one interface every provider adapter implements."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol

from switchyard.contracts import ChatCompletionRequest, CompletionRequest, Delta, Usage
from switchyard.contracts.openai import FinishReason
from switchyard.inference.config import Deployment


@dataclass(frozen=True, slots=True)
class Finish:
    """The last item of a provider stream; `tail`: fragments that arrived together with it."""

    finish_reason: FinishReason
    usage: Usage
    tail: list[Delta] = field(default_factory=list)


# A list is a burst: fragments that arrived together, in order (never empty); they may travel
# on as one message.
ProviderEvent = Delta | list[Delta] | Finish


class Provider(Protocol):
    """A model backend. Streams never block the event loop; closing the iterator stops the work."""

    def streams(self, request: ChatCompletionRequest | CompletionRequest) -> bool:
        """Whether this request's answer comes as it is made (then the deployment's first-token
        and idle bounds apply), or whole at the end (bounded by its `response_timeout`)."""
        ...

    def chat(
        self, request: ChatCompletionRequest, deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream a chat completion: deltas, then exactly one `Finish`."""
        ...

    def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream a text completion: deltas, then exactly one `Finish`."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and models."""
        ...


def usage_of(prompt_tokens: int, completion_tokens: int) -> Usage:
    """A `Usage` with its total filled in."""
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
