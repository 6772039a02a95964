"""The error envelope and the registry of error codes shared by every service.

Codes are transport-neutral. Only the gateway maps them to HTTP statuses and to OpenAI-style bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorCode(StrEnum):
    """Every error code a Switchyard service may emit."""

    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    MODEL_NOT_FOUND = "model_not_found"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_BAD_RESPONSE = "provider_bad_response"
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    CIRCUIT_OPEN = "circuit_open"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CANCELLED = "cancelled"
    SERVICE_UNAVAILABLE = "service_unavailable"
    STREAM_BROKEN = "stream_broken"
    TOOL_FAILED = "tool_failed"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """What a code means and whether a client may retry the same request."""

    retryable: bool
    description: str


ERROR_REGISTRY: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.INVALID_REQUEST: ErrorSpec(
        False, "The request is malformed or a value is out of range."
    ),
    ErrorCode.UNAUTHORIZED: ErrorSpec(False, "Missing or invalid credentials."),
    ErrorCode.FORBIDDEN: ErrorSpec(False, "The credentials do not allow this operation."),
    ErrorCode.NOT_FOUND: ErrorSpec(False, "The resource does not exist (or is not yours)."),
    ErrorCode.MODEL_NOT_FOUND: ErrorSpec(False, "No model with this name is configured."),
    ErrorCode.CONFLICT: ErrorSpec(False, "The request conflicts with the current state."),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorSpec(False, "The request body is larger than allowed."),
    ErrorCode.RATE_LIMITED: ErrorSpec(True, "This tenant sent too many requests; slow down."),
    ErrorCode.OVERLOADED: ErrorSpec(True, "The service's queue is full; retry later."),
    ErrorCode.PROVIDER_TIMEOUT: ErrorSpec(True, "The model provider did not answer in time."),
    ErrorCode.PROVIDER_UNAVAILABLE: ErrorSpec(True, "The model provider could not be reached."),
    ErrorCode.PROVIDER_ERROR: ErrorSpec(True, "The model provider failed while answering."),
    ErrorCode.PROVIDER_BAD_RESPONSE: ErrorSpec(
        False, "The model provider sent a malformed answer."
    ),
    ErrorCode.UPSTREAM_RATE_LIMITED: ErrorSpec(
        True, "The model provider rate-limited the request."
    ),
    ErrorCode.CIRCUIT_OPEN: ErrorSpec(
        True, "Every deployment of the model is failing; retry later."
    ),
    ErrorCode.DEADLINE_EXCEEDED: ErrorSpec(
        True, "The request's deadline passed before it finished."
    ),
    ErrorCode.CANCELLED: ErrorSpec(False, "The client cancelled the request."),
    ErrorCode.SERVICE_UNAVAILABLE: ErrorSpec(True, "A Switchyard service needed for this is down."),
    ErrorCode.STREAM_BROKEN: ErrorSpec(True, "The internal stream lost or reordered messages."),
    ErrorCode.TOOL_FAILED: ErrorSpec(False, "A tool failed while executing."),
    ErrorCode.INTERNAL_ERROR: ErrorSpec(True, "An unexpected error; it has been logged."),
}


class ErrorBody(BaseModel):
    """The one error envelope used on every subject and (translated) on HTTP."""

    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    message: str
    retryable: bool = False
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, code: ErrorCode, message: str, **details: Any) -> ErrorBody:
        """Build an envelope whose `retryable` flag comes from the registry."""
        return cls(
            code=code, message=message, retryable=ERROR_REGISTRY[code].retryable, details=details
        )


class SwitchyardError(Exception):
    """An error that carries its envelope, raised inside services and translated at the edges."""

    def __init__(self, code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.body = ErrorBody.of(code, message, **details)

    @property
    def code(self) -> ErrorCode:
        """The registry code of this error."""
        return self.body.code


class ServiceReply(BaseModel):
    """Base of every request/reply answer: data fields, or `error` when the request failed."""

    error: ErrorBody | None = None
