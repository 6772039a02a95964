"""`python -m switchyard.retrieval`."""

from switchyard.retrieval.app import serve
from switchyard.retrieval.config import RetrievalSettings
from switchyard.runtime.lifecycle import run_service
from switchyard.runtime.logging import setup_logging


def main() -> None:
    """Start the retrieval service."""
    settings = RetrievalSettings()
    setup_logging("retrieval", settings.log_level)
    run_service(lambda stop: serve(stop, settings))


if __name__ == "__main__":
    main()
