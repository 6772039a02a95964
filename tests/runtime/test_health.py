"""gRPC health (grpc.health.v1) reports SERVING while the service's connections are up."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.conftest import Stack

SERVING = health_pb2.HealthCheckResponse.SERVING


def check(port: int, service: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


def test_services_report_serving(stack: Stack) -> None:
    assert check(stack.inference_health_port, "") == SERVING
    assert check(stack.inference_health_port, "inference") == SERVING
    assert check(stack.gateway_health_port, "gateway") == SERVING
