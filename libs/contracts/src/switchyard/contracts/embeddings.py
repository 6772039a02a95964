"""Embeddings: the OpenAI-compatible request shape and the `llm.embed.v1` request/reply messages.

`llm.embed.v1` is plain request/reply (no stream): the requester sends an `EmbedRequestMessage`
with a reply inbox and gets one `EmbedReply` back, either vectors or a structured error.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from switchyard.contracts.envelope import Envelope
from switchyard.contracts.errors import ServiceReply

MAX_EMBEDDING_INPUTS: Final = 2048
"""Most strings one embeddings request may carry (OpenAI's limit)."""

EmbeddingText = Annotated[str, Field(min_length=1)]


def _input_shape(value: Any) -> str | None:
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else None


# A callable discriminator validates only the branch the client meant, so an empty string gets
# one clear error ("at least 1 character") rather than one per union member.
EmbeddingInput = Annotated[
    Annotated[EmbeddingText, Tag("str")]
    | Annotated[
        list[EmbeddingText],
        Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS),
        Tag("list"),
    ],
    Discriminator(
        _input_shape,
        custom_error_type="string_or_list_type",
        custom_error_message="Input should be a string or a list of strings",
    ),
]
EncodingFormat = Literal["float", "base64"]


class EmbeddingRequest(BaseModel):
    """`POST /v1/embeddings` body.

    Only text input is accepted: token-id arrays (which OpenAI also allows) are rejected, since
    token ids are specific to one tokenizer and Switchyard's models do not share one.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256, description="Public model name.")
    input: EmbeddingInput = Field(
        description="The text to embed: one string, or a list of up to 2048 strings."
    )
    encoding_format: EncodingFormat = Field(
        default="float",
        description="`float` (JSON numbers) or `base64` (little-endian float32 bytes).",
    )
    dimensions: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="Vector length; must be the model's own for models that cannot shorten.",
    )
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        # Say what is wrong with token ids, instead of two unhelpful "should be a string" errors.
        if isinstance(value, list) and any(isinstance(item, int | list) for item in value):
            raise ValueError("token-id input is not supported; send a string or a list of strings")
        return value

    def texts(self) -> list[str]:
        """The input as a list of strings (one string becomes a list of one)."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingUsage(BaseModel):
    """Token counts of an embeddings request (there is no completion)."""

    prompt_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)


class EmbedRequestMessage(Envelope):
    """`llm.embed.v1`: texts to embed, answered by one `EmbedReply`."""

    body: EmbeddingRequest


class EmbedReply(ServiceReply):
    """Reply to `llm.embed.v1`: one vector per input, in input order, or an error."""

    data: list[list[float]] = Field(default_factory=list)
    model: str = ""
    usage: EmbeddingUsage = Field(default_factory=EmbeddingUsage)
