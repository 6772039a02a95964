"""`python -m switchyard.inference`."""

from switchyard.inference.app import serve
from switchyard.inference.config import InferenceSettings
from switchyard.runtime.lifecycle import run_service
from switchyard.runtime.logging import setup_logging


def main() -> None:
    """Start the inference service."""
    settings = InferenceSettings()
    setup_logging("inference", settings.log_level)
    run_service(lambda stop: serve(stop, settings))


if __name__ == "__main__":
    main()
