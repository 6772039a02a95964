"""Prometheus metrics: one scrape endpoint per service (a thread, off the event loop)."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(host: str, port: int | None) -> None:
    """Expose the default registry at `http://host:port/metrics` (no port: not served)."""
    if port is None:
        return
    start_http_server(port, addr=host)
    log.info("metrics on %s:%d", host, port)
