"""Retrieval settings (env prefix `SWITCHYARD_RETRIEVAL_`)."""

from typing import Self

from pydantic import Field, SecretStr, model_validator
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
    chunk_tokens: int = Field(default=200, ge=16, description="Target chunk size in tokens.")
    chunk_overlap: int = Field(default=40, ge=0, description="Tokens repeated between chunks.")
    embed_batch: int = Field(default=32, ge=1, le=256, description="Texts per embedding call.")
    embed_timeout: float = Field(default=30.0, gt=0, description="Seconds per embedding call.")
    exact_search_threshold: int = Field(
        default=10_000,
        ge=0,
        description="At most this many candidate chunks: exact search instead of HNSW.",
    )
    default_ef_search: int = Field(default=80, ge=1, le=1000, description="HNSW ef_search.")
    ingest_ack_wait: float = Field(
        default=30.0, gt=0, description="Seconds before an unacknowledged job is redelivered."
    )
    ingest_max_deliver: int = Field(default=10, ge=1, description="Deliveries of one job at most.")
    job_ttl: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="Seconds job records and uploads are kept."
    )

    @model_validator(mode="after")
    def _chunking_is_possible(self) -> Self:
        if self.chunk_overlap * 2 >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be less than half of chunk_tokens")
        return self
