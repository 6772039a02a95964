"""NATS broker factory: a FastStream `NatsBroker` that reconnects forever, with backoff."""

from __future__ import annotations

import logging
import random
from typing import Any

from faststream.nats import NatsBroker
from nats.aio.client import Client, Server

log = logging.getLogger(__name__)

RECONNECT_BASE_DELAY = 0.25
RECONNECT_MAX_DELAY = 10.0


def reconnect_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, capped, so a fleet never reconnects in step."""
    ceiling = min(RECONNECT_MAX_DELAY, RECONNECT_BASE_DELAY * (2 ** min(attempt, 16)))
    return random.uniform(RECONNECT_BASE_DELAY, max(RECONNECT_BASE_DELAY, ceiling))


def _choose_server(servers: list[Server], _info: dict[str, Any]) -> tuple[Server | None, float]:
    server = min(servers, key=lambda s: s.reconnects)
    return server, reconnect_delay(server.reconnects)


async def _on_error(exc: Exception) -> None:
    log.warning("nats error: %s", exc)


async def _on_disconnected() -> None:
    log.warning("nats disconnected; reconnecting")


async def _on_reconnected() -> None:
    log.info("nats reconnected")


def make_broker(nats_url: str, name: str, graceful_timeout: float = 10.0) -> NatsBroker:
    """Create (but do not connect) the service's broker.

    Args:
        nats_url: comma-separated server URLs.
        name: connection name shown in NATS monitoring (the service name).
        graceful_timeout: seconds FastStream waits for running handlers when the broker stops.
    """
    return NatsBroker(
        servers=[url.strip() for url in nats_url.split(",") if url.strip()],
        name=name,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        reconnect_to_server_handler=_choose_server,
        connect_timeout=2,
        error_cb=_on_error,
        disconnected_cb=_on_disconnected,
        reconnected_cb=_on_reconnected,
        graceful_timeout=graceful_timeout,
        logger=logging.getLogger(f"switchyard.{name}.nats"),
        # Per-message logs go to DEBUG: logging every message on the hot path costs throughput.
        log_level=logging.DEBUG,
    )


def nats_client(broker: NatsBroker) -> Client:
    """The underlying nats-py client of a started broker (for inbox and stream plumbing)."""
    client: Client = broker.connection
    return client


def nats_probe(broker: NatsBroker) -> Any:
    """A health probe that passes while the broker's connection is up."""

    async def probe() -> bool:
        try:
            return bool(nats_client(broker).is_connected)
        except Exception:
            return False

    return probe
