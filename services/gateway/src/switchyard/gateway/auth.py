"""API keys → tenants (from settings for now; a later issue moves them to PostgreSQL)."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import State

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.gateway.ratelimit import RateLimiter

bearer = HTTPBearer(auto_error=False, description="Switchyard API key")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyTable:
    """Looks keys up by digest, so the table holds no plaintext key after start-up."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._tenants = {_digest(key): tenant for key, tenant in keys.items()}

    def tenant(self, key: str) -> str | None:
        """The tenant of `key`, if it is a valid key."""
        return self._tenants.get(_digest(key))


def authenticate(keys: KeyTable, scheme: str | None, key: str | None) -> str:
    """The tenant of a bearer key, or a 401 error (`scheme` and `key` from the Authorization
    header; either is None when the header is missing or not of that shape)."""
    if scheme is None or key is None or scheme.lower() != "bearer":
        raise SwitchyardError(
            ErrorCode.UNAUTHORIZED, "Missing API key: send 'Authorization: Bearer <key>'."
        )
    tenant = keys.tenant(key)
    if tenant is None:
        raise SwitchyardError(ErrorCode.UNAUTHORIZED, "Invalid API key.")
    return tenant


def bearer_parts(authorization: str | None) -> tuple[str | None, str | None]:
    """`(scheme, credentials)` of an Authorization header value, as `HTTPBearer` reads it."""
    if not authorization:
        return None, None
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if not scheme or not credentials:
        return None, None
    return scheme, credentials


def admit(state: State, scheme: str | None, key: str | None) -> str:
    """Authenticate, then take a token of the tenant's rate limit (401, 429 otherwise)."""
    tenant = authenticate(state.keys, scheme, key)
    limiter: RateLimiter = state.limiter
    limiter.check(tenant)
    return tenant


async def tenant_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The tenant of the request's bearer key, or a 401 error; 429 past its rate limit."""
    if credentials is None:
        return admit(request.app.state, None, None)
    return admit(request.app.state, credentials.scheme, credentials.credentials)


Tenant = Annotated[str, Depends(tenant_of)]
