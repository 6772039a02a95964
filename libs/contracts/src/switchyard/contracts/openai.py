"""Request and response shapes of the OpenAI-compatible API (chat and text completions).

These models validate what clients send. Unknown top-level fields are rejected with a clear error,
as the OpenAI API does, rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from switchyard.contracts.retrieval import RagOptions

_STRICT = ConfigDict(extra="forbid")
_LENIENT = ConfigDict(extra="ignore")


class TextPart(BaseModel):
    """A text content part."""

    model_config = _LENIENT
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    """An image reference inside a content part."""

    model_config = _LENIENT
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    """An image content part (passed through to providers that accept images)."""

    model_config = _LENIENT
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]
Content = str | list[ContentPart]


class FunctionCall(BaseModel):
    """The function a tool call names, with its JSON-encoded arguments."""

    model_config = _LENIENT
    name: str = Field(min_length=1, max_length=64)
    arguments: str


class ToolCall(BaseModel):
    """A tool call made by the assistant."""

    model_config = _LENIENT
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(BaseModel):
    """Instructions for the model."""

    model_config = _STRICT
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(BaseModel):
    """A message from the end user."""

    model_config = _STRICT
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(BaseModel):
    """A previous answer of the model, possibly with tool calls."""

    model_config = _STRICT
    role: Literal["assistant"]
    content: Content | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _content_or_tool_calls(self) -> AssistantMessage:
        if self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        return self


class ToolMessage(BaseModel):
    """The result of a tool call, sent back to the model."""

    model_config = _STRICT
    role: Literal["tool"]
    content: Content
    tool_call_id: str = Field(min_length=1)


ChatMessage = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


class FunctionDefinition(BaseModel):
    """A function the model may call, described by a JSON schema."""

    model_config = _LENIENT
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    strict: bool | None = None


class ToolDefinition(BaseModel):
    """A tool offered to the model."""

    model_config = _LENIENT
    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoice(BaseModel):
    """Force the model to call one named function."""

    model_config = _LENIENT
    type: Literal["function"]
    function: dict[str, str]


class StreamOptions(BaseModel):
    """Options of a streamed response."""

    model_config = _LENIENT
    include_usage: bool = False


class ResponseFormat(BaseModel):
    """Requested output format."""

    model_config = _LENIENT
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


Stop = str | Annotated[list[str], Field(max_length=4)] | None


class SamplingParams(BaseModel):
    """Sampling parameters shared by chat and text completions, with their valid ranges."""

    model_config = _STRICT

    model: str = Field(min_length=1, max_length=256, description="Public model name.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request is supported.")
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stop: Stop = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)
    logit_bias: dict[str, float] | None = None
    metadata: dict[str, str] | None = None


class ChatCompletionRequest(SamplingParams):
    """`POST /v1/chat/completions` body."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    tools: list[ToolDefinition] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    store: bool | None = None
    service_tier: str | None = None
    rag: RagOptions | None = Field(
        default=None, description="Switchyard extension: ground the answer on collections."
    )

    def token_limit(self) -> int | None:
        """The completion token limit, whichever of the two spellings the client used."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingParams):
    """`POST /v1/completions` body (legacy text completion)."""

    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)] = Field(
        description="The prompt; a list must hold exactly one string."
    )
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=1)
    logprobs: int | None = Field(default=None, ge=0, le=5)

    def prompt_text(self) -> str:
        """The prompt as one string."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def token_limit(self) -> int | None:
        """The completion token limit."""
        return self.max_tokens


class Usage(BaseModel):
    """Token counts of one request (and its cost, where the deployment has a price table)."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "cancelled"]


class ToolCallDelta(BaseModel):
    """A fragment of a tool call in a streamed answer."""

    index: int = 0
    id: str | None = None
    type: Literal["function"] | None = None
    function: dict[str, str] | None = None


class Delta(BaseModel):
    """A fragment of the answer: some text and/or tool-call pieces."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    def as_dict(self) -> dict[str, Any]:
        """`model_dump(exclude_none=True)`, without pydantic's serializer for plain text (the
        common case on the streaming hot path)."""
        if self.role is None and self.tool_calls is None:
            return {} if self.content is None else {"content": self.content}
        return self.model_dump(exclude_none=True)


class DeploymentHealth(BaseModel):
    """How one deployment of a model is doing (shown to admins)."""

    name: str
    provider: str
    priority: int
    weight: float
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    retry_in: float
    inflight: int
    calls: int


class ModelCard(BaseModel):
    """One entry of `GET /v1/models`."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "switchyard"
    deployments: list[DeploymentHealth] | None = None
