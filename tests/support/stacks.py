"""Private stacks: a NATS server and chosen services of their own, for tests that break things."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import Service, start_service, wait_http

from switchyard.runtime.embedded import NatsServer, free_port, start_nats

KEY = "sk-private"


@dataclass
class PrivateStack:
    """A NATS server, a gateway, and (optionally) an inference service, all this test's own."""

    nats: NatsServer
    base_url: str
    gateway: Service
    inference: Service | None = None
    retrieval: Service | None = None
    workdir: Path | None = None
    extra: list[Service] = field(default_factory=list)  # started by the test; stopped at the end
    headers: dict[str, str] = field(default_factory=lambda: {"authorization": f"Bearer {KEY}"})


@contextlib.contextmanager
def private_stack(
    workdir: Path,
    models: dict[str, Any] | None = None,
    gateway_env: dict[str, str] | None = None,
    inference_env: dict[str, str] | None = None,
    retrieval_env: dict[str, str] | None = None,
) -> Iterator[PrivateStack]:
    """Start NATS, a gateway, inference when `models` is given and retrieval when
    `retrieval_env` is (it must name the database); stop them all afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    nats = start_nats(workdir / "nats", port=free_port(), log_file=workdir / "nats.log")
    services: list[Service] = []
    started: PrivateStack | None = None
    try:
        common = {"SWITCHYARD_NATS_URL": nats.url}
        inference = None
        if models is not None:
            inference = start_service(
                "inference",
                {
                    **common,
                    "SWITCHYARD_INFERENCE_MODELS": json.dumps(models),
                    **(inference_env or {}),
                },
                workdir,
            )
            services.append(inference)
        retrieval = None
        if retrieval_env is not None:
            retrieval = start_service("retrieval", {**common, **retrieval_env}, workdir)
            services.append(retrieval)
        port = free_port()
        gateway = start_service(
            "gateway",
            {
                **common,
                "SWITCHYARD_GATEWAY_PORT": str(port),
                "SWITCHYARD_GATEWAY_API_KEYS": KEY,
                **(gateway_env or {}),
            },
            workdir,
        )
        services.append(gateway)
        stack = started = PrivateStack(
            nats, f"http://127.0.0.1:{port}", gateway, inference, retrieval, workdir
        )
        wait_http(f"{stack.base_url}/readyz", gateway)
        if inference is not None:
            wait_http(f"{stack.base_url}/v1/models", inference, headers=stack.headers)
        if retrieval is not None:
            wait_http(f"{stack.base_url}/v1/collections", retrieval, headers=stack.headers)
        yield stack
    finally:
        for service in reversed(services):
            service.stop()
        for extra in started.extra if started is not None else ():
            extra.stop()
        nats.stop()
