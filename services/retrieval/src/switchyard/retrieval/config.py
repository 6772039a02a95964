"""Retrieval settings (env prefix `SWITCHYARD_RETRIEVAL_`)."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from switchyard.runtime.settings import ServiceSettings


class RetrievalSettings(ServiceSettings):
    """Settings of the retrieval service."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_RETRIEVAL_", extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="PostgreSQL DSN (with pgvector); `make run` points it at the embedded server.",
    )
    pool_size: int = Field(default=5, ge=1, description="Connections in the asyncpg pool.")
