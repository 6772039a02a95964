"""Tools settings (env prefix `SWITCHYARD_TOOLS_`)."""

from pydantic_settings import SettingsConfigDict

from switchyard.runtime.settings import ServiceSettings


class ToolsSettings(ServiceSettings):
    """Settings of the tools service (the registry and execution land with their own issue)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_TOOLS_", extra="ignore")
