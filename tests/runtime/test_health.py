"""gRPC health (grpc.health.v1) reports SERVING while the service's connections are up."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.conftest import Stack


async def check(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


async def test_services_report_serving(stack: Stack) -> None:
    assert await check(stack.inference_health_port, "") == health_pb2.HealthCheckResponse.SERVING
    assert (
        await check(stack.inference_health_port, "inference")
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert (
        await check(stack.gateway_health_port, "gateway") == health_pb2.HealthCheckResponse.SERVING
    )
