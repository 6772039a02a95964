"""`python -m switchyard.gateway`."""

import uvicorn

from switchyard.gateway.app import create_app
from switchyard.gateway.config import GatewaySettings
from switchyard.gateway.http import HeadWithBodyProtocol
from switchyard.runtime.logging import setup_logging
from switchyard.runtime.telemetry import setup_tracing


def main() -> None:
    """Serve the gateway with uvicorn (uvloop + httptools); SIGTERM drains in-flight requests."""
    settings = GatewaySettings()
    setup_logging("gateway", settings.log_level)
    setup_tracing("gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=HeadWithBodyProtocol,  # httptools, a response's head and body in one write
        # No X-Forwarded-* rewriting of the client address: nothing here uses it, and the layer
        # costs a header scan per request.
        proxy_headers=False,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
    )


if __name__ == "__main__":
    main()
