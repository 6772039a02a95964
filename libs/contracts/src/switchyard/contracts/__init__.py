"""Switchyard contracts: the data that crosses service boundaries. No I/O lives here."""

from switchyard.contracts import subjects
from switchyard.contracts.embeddings import (
    EmbeddingRequest,
    EmbeddingUsage,
    EmbedReply,
    EmbedRequestMessage,
)
from switchyard.contracts.envelope import (
    REQUEST_ID_PATTERN,
    Envelope,
    EnvelopeFields,
    deadline_in,
)
from switchyard.contracts.errors import (
    ERROR_REGISTRY,
    ErrorBody,
    ErrorCode,
    ServiceReply,
    SwitchyardError,
)
from switchyard.contracts.messages import (
    STREAM_MESSAGE,
    CancelMessage,
    ChatRequestMessage,
    CompletionRequestMessage,
    ModelsReply,
    ModelsRequest,
    StreamChunk,
    StreamDone,
    StreamError,
    UsageEvent,
)
from switchyard.contracts.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    Delta,
    DeploymentHealth,
    ModelCard,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "ERROR_REGISTRY",
    "REQUEST_ID_PATTERN",
    "STREAM_MESSAGE",
    "CancelMessage",
    "ChatCompletionRequest",
    "ChatRequestMessage",
    "CompletionRequest",
    "CompletionRequestMessage",
    "Delta",
    "DeploymentHealth",
    "EmbedReply",
    "EmbedRequestMessage",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "Envelope",
    "EnvelopeFields",
    "ErrorBody",
    "ErrorCode",
    "ModelCard",
    "ModelsReply",
    "ModelsRequest",
    "ServiceReply",
    "StreamChunk",
    "StreamDone",
    "StreamError",
    "SwitchyardError",
    "ToolCallDelta",
    "Usage",
    "UsageEvent",
    "deadline_in",
    "subjects",
]
