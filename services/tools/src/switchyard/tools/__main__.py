"""`python -m switchyard.tools`: for now it joins NATS and serves health only."""

from switchyard.runtime.lifecycle import run_service
from switchyard.runtime.logging import setup_logging
from switchyard.runtime.service import serve_broker
from switchyard.tools.config import ToolsSettings


def main() -> None:
    """Start the tools service."""
    settings = ToolsSettings()
    setup_logging("tools", settings.log_level)
    run_service(lambda stop: serve_broker("tools", settings, stop))


if __name__ == "__main__":
    main()
