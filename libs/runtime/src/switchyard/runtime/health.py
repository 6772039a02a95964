"""The standard gRPC health protocol (`grpc.health.v1`) for Kubernetes probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[bool]]


class HealthServer:
    """Serves `grpc.health.v1`, reporting SERVING only while every probe passes.

    The probes are polled in the background (they check the service's NATS and database
    connections), so a health check never waits on I/O.
    """

    def __init__(self, service: str, host: str, port: int, probes: list[Probe]) -> None:
        self._service = service
        self._address = f"{host}:{port}"
        self._probes = probes
        self._servicer = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = port
        self.serving = False

    async def start(self, interval: float = 1.0) -> None:
        """Start serving (NOT_SERVING until the first passing poll)."""
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        self.port = server.add_insecure_port(self._address)
        await server.start()
        self._server = server
        await self._refresh()
        self._task = asyncio.create_task(self._poll(interval), name="health-poll")
        log.info("health server listening", extra={"port": self.port})

    async def _refresh(self) -> None:
        results: list[bool] = []
        for probe in self._probes:
            try:
                results.append(await probe())
            except Exception:
                results.append(False)
        self.serving = all(results)
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", self._service):
            await self._servicer.set(name, status)

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._refresh()

    async def stop(self) -> None:
        """Report NOT_SERVING to watchers and stop the server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._servicer.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace=0.5)
