"""The one place where error codes become HTTP statuses and OpenAI-style error bodies."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from switchyard.contracts import ErrorBody, ErrorCode, SwitchyardError

log = logging.getLogger(__name__)

# code → (HTTP status, OpenAI error type)
HTTP_STATUS: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.INVALID_REQUEST: (400, "invalid_request_error"),
    ErrorCode.UNAUTHORIZED: (401, "authentication_error"),
    ErrorCode.FORBIDDEN: (403, "permission_error"),
    ErrorCode.NOT_FOUND: (404, "not_found_error"),
    ErrorCode.MODEL_NOT_FOUND: (404, "invalid_request_error"),
    ErrorCode.CONFLICT: (409, "invalid_request_error"),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, "invalid_request_error"),
    ErrorCode.RATE_LIMITED: (429, "rate_limit_error"),
    ErrorCode.UPSTREAM_RATE_LIMITED: (429, "rate_limit_error"),
    ErrorCode.CANCELLED: (499, "invalid_request_error"),
    ErrorCode.INTERNAL_ERROR: (500, "server_error"),
    ErrorCode.PROVIDER_ERROR: (502, "server_error"),
    ErrorCode.PROVIDER_BAD_RESPONSE: (502, "server_error"),
    ErrorCode.STREAM_BROKEN: (502, "server_error"),
    ErrorCode.TOOL_FAILED: (502, "server_error"),
    ErrorCode.PROVIDER_UNAVAILABLE: (503, "server_error"),
    ErrorCode.CIRCUIT_OPEN: (503, "server_error"),
    ErrorCode.OVERLOADED: (503, "server_error"),
    ErrorCode.SERVICE_UNAVAILABLE: (503, "server_error"),
    ErrorCode.PROVIDER_TIMEOUT: (504, "timeout_error"),
    ErrorCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
}


def openai_error(error: ErrorBody, param: str | None = None, **extra: Any) -> dict[str, Any]:
    """The OpenAI-style body `{"error": {message, type, code, param}}` plus our envelope fields."""
    _, kind = HTTP_STATUS.get(error.code, (500, "server_error"))
    body: dict[str, Any] = {
        "message": error.message,
        "type": kind,
        "code": error.code.value,
        "param": param,
        "retryable": error.retryable,
    }
    if error.details:
        body["details"] = error.details
    body.update(extra)
    return {"error": body}


def error_response(error: ErrorBody, param: str | None = None) -> Response:
    """A JSON error response with the status mapped from the code."""
    status, _ = HTTP_STATUS.get(error.code, (500, "server_error"))
    headers = {}
    retry_after = error.details.get("retry_after")
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return Response(
        orjson.dumps(openai_error(error, param)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})
_ROLE_TAGS = frozenset({"system", "developer", "user", "assistant", "tool"})


def _param(loc: tuple[int | str, ...]) -> str | None:
    """The client's view of an error location: body fields only, without pydantic's union tags."""
    parts: list[str] = []
    previous: int | str | None = None
    for part in loc:
        tag = isinstance(part, str) and (
            part in _TYPE_TAGS
            or "[" in part
            or part.startswith("function-")
            or (isinstance(previous, int) and part in _ROLE_TAGS)
        )
        if part != "body" and not tag:
            parts.append(str(part))
        previous = part
    return ".".join(parts) or None


def validation_error(errors: Sequence[Any]) -> Response:
    """The 400 answer to a body that failed validation (pydantic's or FastAPI's error list)."""
    if not errors:
        return error_response(ErrorBody.of(ErrorCode.INVALID_REQUEST, "invalid request"))
    # Of a union's alternatives, report the one that says most: a range or length error beats
    # "should be a valid string" from the alternative the client clearly did not mean.
    first_param = _param(tuple(errors[0].get("loc", ())))
    same = [e for e in errors if _param(tuple(e.get("loc", ()))) == first_param]
    first = next((e for e in same if not str(e.get("type", "")).endswith("_type")), same[0])
    if first.get("type") == "json_invalid":
        return error_response(
            ErrorBody.of(ErrorCode.INVALID_REQUEST, "The request body is not valid JSON.")
        )
    param = first_param
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg"))
    details = [{"param": _param(tuple(e.get("loc", ()))), "msg": e.get("msg")} for e in errors[:10]]
    return error_response(ErrorBody.of(ErrorCode.INVALID_REQUEST, message, errors=details), param)


def unexpected_error(exc: BaseException) -> Response:
    """A bug: logged with its stack trace, answered with the envelope (never the trace)."""
    log.error("unhandled error", exc_info=exc)
    return error_response(
        ErrorBody.of(ErrorCode.INTERNAL_ERROR, "internal error; it has been logged")
    )


_HTTP_CODES = {
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID_REQUEST,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the gateway as the structured envelope: no stack trace, no bare 500."""

    async def on_switchyard(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SwitchyardError)
        return error_response(exc.body, exc.body.details.get("param"))

    async def on_validation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_error(list(exc.errors()))

    async def on_http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)
        if exc.status_code >= 500:
            code = ErrorCode.INTERNAL_ERROR
        response = error_response(ErrorBody.of(code, str(exc.detail)))
        response.status_code = exc.status_code
        return response

    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        return unexpected_error(exc)

    app.add_exception_handler(SwitchyardError, on_switchyard)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
