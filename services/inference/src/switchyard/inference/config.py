"""Inference settings and the model table (public model name → provider and parameters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic_settings import SettingsConfigDict

from switchyard.runtime.settings import ServiceSettings

LOCAL_MODEL_NAME = "smollm2-135m-instruct"
LOCAL_EMBEDDING_MODEL_NAME = "all-minilm-l6-v2"


ProviderName = Literal["local", "openai", "anthropic"]
ModelKind = Literal["chat", "embedding"]


class Resilience(BaseModel):
    """Retry, retry-budget and circuit-breaker parameters of one deployment."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=10, description="Attempts per deployment.")
    backoff_base: float = Field(default=0.2, gt=0, description="First backoff ceiling (s).")
    backoff_max: float = Field(default=5.0, gt=0, description="Largest backoff ceiling (s).")
    retry_budget_ratio: float = Field(
        default=0.2, ge=0, le=1, description="Retries may add at most this fraction of traffic."
    )
    retry_budget_window: float = Field(default=10.0, gt=0, description="Budget window (s).")
    retry_budget_min: int = Field(
        default=3, ge=0, description="Retries always allowed per window (for low traffic)."
    )
    breaker_consecutive_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open the breaker."
    )
    breaker_failure_ratio: float = Field(
        default=0.5, gt=0, le=1, description="Failure ratio in the window that opens it."
    )
    breaker_min_calls: int = Field(
        default=10, ge=1, description="Calls in the window before the ratio counts."
    )
    breaker_window: float = Field(default=30.0, gt=0, description="Failure-ratio window (s).")
    breaker_cooldown: float = Field(
        default=10.0, gt=0, description="Seconds open before probing (at least any Retry-After)."
    )
    breaker_half_open_probes: int = Field(
        default=1, ge=1, description="Probe requests allowed at once while half-open."
    )


class Deployment(BaseModel):
    """One place a model is served: a provider, its upstream model and its limits."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", description="Label in metrics and logs (default: model#index).")
    provider: ProviderName = Field(description="Provider adapter that serves the model.")
    upstream_model: str | None = Field(
        default=None, description="Model name sent upstream (defaults to the public name)."
    )
    base_url: str | None = Field(
        default=None, description="Base URL of the endpoint, e.g. http://host/v1."
    )
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the upstream API key."
    )
    weight: float = Field(default=1.0, gt=0, description="Share of load within its priority.")
    priority: int = Field(
        default=0, ge=0, description="Lower is preferred; higher priorities are fallbacks."
    )
    first_token_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to the first token."
    )
    idle_timeout: float = Field(default=30.0, gt=0, description="Seconds allowed between chunks.")
    response_timeout: float = Field(
        default=120.0,
        gt=0,
        description=(
            "Seconds for a whole answer when the call upstream is not streamed (a client's "
            "non-streamed request to an OpenAI-compatible endpoint)."
        ),
    )
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to connect upstream.")
    max_concurrency: int = Field(
        default=256, ge=1, description="Requests in flight to this deployment at once."
    )
    default_max_tokens: int = Field(
        default=256, ge=1, description="Completion limit when the client sets none."
    )
    input_cost_per_mtok: float = Field(
        default=0.0, ge=0, description="Price of a million prompt tokens (USD)."
    )
    output_cost_per_mtok: float = Field(
        default=0.0, ge=0, description="Price of a million completion tokens (USD)."
    )
    resilience: Resilience = Field(default_factory=Resilience)


_MODEL_LEVEL = ("deployments", "degraded_model", "cache_ttl", "kind")


class ModelEntry(BaseModel):
    """How one public model name is served: its deployments and what to do when all fail.

    A single deployment may be written inline (`{"provider": "openai", ...}`).
    """

    model_config = ConfigDict(extra="forbid")

    kind: ModelKind = Field(
        default="chat",
        description="`chat` serves chat and text completions; `embedding` serves embeddings.",
    )
    deployments: list[Deployment] = Field(min_length=1, description="Where the model is served.")
    degraded_model: str | None = Field(
        default=None, description="Another public model that answers when every deployment fails."
    )

    @model_validator(mode="before")
    @classmethod
    def _inline_deployment(cls, data: Any) -> Any:
        if isinstance(data, dict) and "provider" in data:
            inline = {k: v for k, v in data.items() if k not in _MODEL_LEVEL}
            rest = {k: v for k, v in data.items() if k in _MODEL_LEVEL}
            return {**rest, "deployments": [inline, *rest.get("deployments", [])]}
        return data


def default_models() -> dict[str, ModelEntry]:
    """The embedded default: the local SmolLM2 chat model and the local MiniLM embedding model."""
    return {
        LOCAL_MODEL_NAME: ModelEntry(deployments=[Deployment(provider="local")]),
        LOCAL_EMBEDDING_MODEL_NAME: ModelEntry(
            kind="embedding", deployments=[Deployment(provider="local")]
        ),
    }


_MODEL_TABLE = TypeAdapter(dict[str, ModelEntry])


class InferenceSettings(ServiceSettings):
    """Settings of the inference service (env prefix `SWITCHYARD_INFERENCE_`)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_INFERENCE_", extra="ignore")

    models_file: Path | None = Field(
        default=None,
        description="JSON file with the model table (name → entry); replaces `models`.",
    )
    models: dict[str, ModelEntry] = Field(
        default_factory=default_models, description="The model table as JSON (name → entry)."
    )
    default_model: str | None = Field(
        default=None,
        description="Model used when a request names `default` (unset: the table's first model).",
    )
    local_threads: int = Field(default=2, ge=1, description="CPU threads per local generation.")
    local_workers: int = Field(
        default=1, ge=1, description="Local generations that run at once (one model copy each)."
    )
    local_queue: int = Field(
        default=16, ge=0, description="Local generations that may wait; beyond that: `overloaded`."
    )
    local_context: int = Field(
        default=2048, ge=256, description="Context window of the local model."
    )
    rag_timeout: float = Field(
        default=2.0, gt=0, description="Seconds the retrieval step of a RAG chat may take."
    )
    cache_enabled: bool = Field(
        default=True, description="Keep an exact-match response cache in NATS KV."
    )
    cache_bucket: str = Field(default="switchyard_llm_cache", description="NATS KV bucket name.")
    cache_ttl: float = Field(default=3600.0, gt=0, description="Seconds a cached answer lives.")
    max_inflight: int = Field(
        default=1024, ge=1, description="Generations this replica runs at once (all providers)."
    )
    embed_max_batch: int = Field(
        default=64,
        ge=1,
        description="Most inputs one call of the local embedding model encodes (micro-batch size).",
    )
    embed_max_wait_ms: float = Field(
        default=5.0,
        ge=0,
        description="Milliseconds a local embedding request waits for others to share its batch.",
    )
    embed_queue: int = Field(
        default=4096,
        ge=1,
        description="Inputs that may wait for the local embedding model; beyond: `overloaded`.",
    )
    embed_threads: int = Field(
        default=2, ge=1, description="CPU threads torch uses for the local embedding model."
    )

    def model_table(self) -> dict[str, ModelEntry]:
        """The configured model table (from `models_file` when set), deployments named."""
        table = self.models
        if self.models_file is not None:
            table = _MODEL_TABLE.validate_python(json.loads(self.models_file.read_text()))
        for name, entry in table.items():
            for index, deployment in enumerate(entry.deployments):
                deployment.name = deployment.name or f"{name}#{index}"
            if entry.degraded_model is not None and entry.degraded_model not in table:
                raise ValueError(f"{name}: degraded_model {entry.degraded_model!r} is not a model")
        return table
