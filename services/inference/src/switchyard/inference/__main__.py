"""`python -m switchyard.inference`."""

from switchyard.inference.app import serve
from switchyard.inference.config import InferenceSettings
from switchyard.runtime.lifecycle import run_service


def main() -> None:
    """Start the inference service."""
    settings = InferenceSettings()
    run_service("inference", settings, lambda stop: serve(stop, settings))


if __name__ == "__main__":
    main()
