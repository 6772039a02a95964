"""Switchyard contracts: the data that crosses service boundaries. No I/O lives here."""

from switchyard.contracts import subjects
from switchyard.contracts.envelope import (
    REQUEST_ID_PATTERN,
    Envelope,
    EnvelopeFields,
    deadline_in,
)
from switchyard.contracts.errors import ERROR_REGISTRY, ErrorBody, ErrorCode, SwitchyardError
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
)
from switchyard.contracts.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    Delta,
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
    "Envelope",
    "EnvelopeFields",
    "ErrorBody",
    "ErrorCode",
    "ModelCard",
    "ModelsReply",
    "ModelsRequest",
    "StreamChunk",
    "StreamDone",
    "StreamError",
    "SwitchyardError",
    "ToolCallDelta",
    "Usage",
    "deadline_in",
    "subjects",
]
