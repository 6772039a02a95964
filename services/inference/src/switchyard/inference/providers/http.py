"""HTTP plumbing shared by the provider adapters that call a remote API (through `client`)."""

from __future__ import annotations

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.inference.providers.client import ConnectError, HTTPError, Response, Timeout


def transport_error(exc: HTTPError) -> SwitchyardError:
    """The error of an HTTP failure that produced no status: timeout, refused, broken."""
    if isinstance(exc, Timeout):
        return SwitchyardError(ErrorCode.PROVIDER_TIMEOUT, f"upstream timed out: {exc}")
    if isinstance(exc, ConnectError):
        return SwitchyardError(ErrorCode.PROVIDER_UNAVAILABLE, f"cannot connect to upstream: {exc}")
    return SwitchyardError(
        ErrorCode.PROVIDER_ERROR, f"upstream connection failed: {type(exc).__name__}: {exc}"
    )


def require_event_stream(response: Response) -> None:
    """A 200 that is not a server-sent event stream is a malformed answer."""
    require_content_type(response, "text/event-stream")


def require_json(response: Response) -> None:
    """A 200 that is not JSON is a malformed answer (an HTML error page, say)."""
    require_content_type(response, "application/json")


def require_content_type(response: Response, expected: str) -> None:
    """A 200 of another content type than `expected` is a malformed answer."""
    ctype = response.headers.get("content-type", "")
    if not ctype.startswith(expected):
        raise SwitchyardError(
            ErrorCode.PROVIDER_BAD_RESPONSE,
            f"upstream sent content type {ctype!r}, expected {expected}",
        )
