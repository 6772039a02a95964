"""Gateway settings (env prefix `SWITCHYARD_GATEWAY_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from switchyard.gateway.ratelimit import RateLimiter, parse_overrides
from switchyard.runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Settings of the HTTP edge."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_GATEWAY_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="HTTP bind address.")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port.")
    api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="API keys and tenants: `key1=tenant1,key2=tenant2` (a bare key → `default`).",
    )
    request_timeout: float = Field(
        default=300.0, gt=0, description="Absolute deadline of a request, in seconds."
    )
    first_token_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to wait for the first message of a streamed request.",
    )
    idle_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait between streamed messages."
    )
    response_timeout: float = Field(
        default=150.0,
        gt=0,
        description=(
            "Seconds to wait for the first message of a non-streamed request: inference may get "
            "the answer whole from upstream (each deployment's response_timeout, 120 s by default)."
        ),
    )
    control_timeout: float = Field(
        default=5.0, gt=0, description="Timeout of small request/reply calls (e.g. listing models)."
    )
    retrieval_timeout: float = Field(
        default=30.0, gt=0, description="Timeout of retrieval calls (search, collections)."
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest accepted request body."
    )

    rate_limit: float = Field(
        default=0.0,
        ge=0,
        description="Requests per second per tenant, in each gateway replica (0: unlimited).",
    )
    rate_limit_burst: float = Field(
        default=2.0,
        gt=0,
        description="Seconds' worth of requests a tenant may send at once (at least one).",
    )
    tenant_rate_limits: str = Field(
        default="",
        description="Per-tenant rates that replace `rate_limit`: `tenant1=50,tenant2=0` (0: none).",
    )

    @field_validator("tenant_rate_limits")
    @classmethod
    def _overrides_parse(cls, value: str) -> str:
        parse_overrides(value)
        return value

    admin_tenants: str = Field(
        default="",
        description="Comma-separated tenants that see deployment health in `GET /v1/models`.",
    )

    def admin_tenant_set(self) -> frozenset[str]:
        """The admin tenants."""
        return frozenset(t.strip() for t in self.admin_tenants.split(",") if t.strip())

    def rate_limiter(self) -> RateLimiter:
        """The per-tenant rate limiter these settings describe."""
        return RateLimiter(
            self.rate_limit, self.rate_limit_burst, parse_overrides(self.tenant_rate_limits)
        )

    def key_table(self) -> dict[str, str]:
        """API key → tenant id."""
        table: dict[str, str] = {}
        for item in self.api_keys.get_secret_value().split(","):
            key, _, tenant = item.strip().partition("=")
            if key:
                table[key] = tenant.strip() or "default"
        return table
