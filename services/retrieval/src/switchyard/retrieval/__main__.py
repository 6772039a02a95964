"""`python -m switchyard.retrieval`."""

from switchyard.retrieval.app import serve
from switchyard.retrieval.config import RetrievalSettings
from switchyard.runtime.lifecycle import run_service


def main() -> None:
    """Start the retrieval service."""
    settings = RetrievalSettings()
    run_service("retrieval", settings, lambda stop: serve(stop, settings))


if __name__ == "__main__":
    main()
