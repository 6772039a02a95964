"""HTTP plumbing shared by the provider adapters that call a remote API through httpx."""

from __future__ import annotations

import httpx

from switchyard.contracts import ErrorCode, SwitchyardError


def transport_error(exc: httpx.HTTPError) -> SwitchyardError:
    """The error of an HTTP failure that produced no status: timeout, refused, broken."""
    if isinstance(exc, httpx.TimeoutException):
        return SwitchyardError(
            ErrorCode.PROVIDER_TIMEOUT, f"upstream timed out ({type(exc).__name__})"
        )
    if isinstance(exc, httpx.ConnectError):
        return SwitchyardError(ErrorCode.PROVIDER_UNAVAILABLE, f"cannot connect to upstream: {exc}")
    return SwitchyardError(
        ErrorCode.PROVIDER_ERROR, f"upstream connection failed: {type(exc).__name__}: {exc}"
    )


def require_event_stream(response: httpx.Response) -> None:
    """A 200 that is not a server-sent event stream is a malformed answer."""
    ctype = response.headers.get("content-type", "")
    if not ctype.startswith("text/event-stream"):
        raise SwitchyardError(
            ErrorCode.PROVIDER_BAD_RESPONSE,
            f"upstream sent content type {ctype!r}, expected text/event-stream",
        )
