"""`python -m switchyard.tools`: for now it joins NATS and serves health only."""

from switchyard.runtime.lifecycle import run_service
from switchyard.runtime.service import serve_broker
from switchyard.tools.config import ToolsSettings


def main() -> None:
    """Start the tools service."""
    settings = ToolsSettings()
    run_service("tools", settings, lambda stop: serve_broker("tools", settings, stop))


if __name__ == "__main__":
    main()
