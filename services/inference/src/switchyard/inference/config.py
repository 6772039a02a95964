"""Inference settings and the model table (public model name → provider and parameters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic_settings import SettingsConfigDict

from switchyard.runtime.settings import ServiceSettings

LOCAL_MODEL_NAME = "smollm2-135m-instruct"


class ModelEntry(BaseModel):
    """How one public model name is served."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["local", "openai"] = Field(
        description="Provider adapter that serves the model."
    )
    upstream_model: str | None = Field(
        default=None, description="Model name sent upstream (defaults to the public name)."
    )
    base_url: str | None = Field(
        default=None, description="Base URL of an OpenAI-compatible endpoint, e.g. http://host/v1."
    )
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the upstream API key."
    )
    first_token_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to the first token."
    )
    idle_timeout: float = Field(default=30.0, gt=0, description="Seconds allowed between chunks.")
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to connect upstream.")
    default_max_tokens: int = Field(
        default=256, ge=1, description="Completion limit when the client sets none."
    )


def default_models() -> dict[str, ModelEntry]:
    """The embedded default: the local SmolLM2 model only."""
    return {LOCAL_MODEL_NAME: ModelEntry(provider="local")}


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
    max_inflight: int = Field(
        default=1024, ge=1, description="Generations this replica runs at once (all providers)."
    )

    def model_table(self) -> dict[str, ModelEntry]:
        """The configured model table (from `models_file` when set)."""
        if self.models_file is not None:
            return _MODEL_TABLE.validate_python(json.loads(self.models_file.read_text()))
        return self.models
