"""Settings base shared by every service.

Each service subclasses `ServiceSettings` with its own `env_prefix` (`SWITCHYARD_GATEWAY_`, …).
Values shared by the whole suite (the NATS URL) fall back to one suite-wide variable, so a single
`SWITCHYARD_NATS_URL` configures every service while a service-specific variable still wins.
"""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _suite_default(name: str, default: str) -> str:
    return os.environ.get(f"SWITCHYARD_{name}", default)


class ServiceSettings(BaseSettings):
    """Fields every service has."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    nats_url: str = Field(
        default_factory=lambda: _suite_default("NATS_URL", "nats://127.0.0.1:4222"),
        description="Comma-separated NATS server URLs (falls back to SWITCHYARD_NATS_URL).",
    )
    health_host: str = Field(
        default="127.0.0.1", description="Bind address of the gRPC health server."
    )
    health_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the gRPC health server (0 = any free port)."
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Prometheus /metrics port (unset: not served)."
    )
    log_level: str = Field(
        default_factory=lambda: _suite_default("LOG_LEVEL", "INFO"),
        description="Log level (falls back to SWITCHYARD_LOG_LEVEL).",
    )
    shutdown_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to drain in-flight work after SIGTERM."
    )
