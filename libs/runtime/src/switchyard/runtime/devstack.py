"""`make run`: the whole suite on one machine with the embedded default stack.

Starts NATS (JetStream) and PostgreSQL + pgvector with their data under `.data/`, then every
service as its own process, waits until the gateway is ready, prints its URL and a dev API key
(also written to `.data/dev-api-key`). Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.runtime.embedded import (
    NatsServer,
    PostgresServer,
    free_port,
    start_nats,
    start_postgres,
    stop_process,
)

SERVICES = ("inference", "retrieval", "tools", "gateway")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def dev_api_key(data_dir: Path) -> str:
    """The dev key kept in `.data/dev-api-key`, created on first run."""
    path = data_dir / "dev-api-key"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    key = "sk-switchyard-dev-" + secrets.token_hex(16)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def health_serving(port: int) -> bool:
    """Whether the gRPC health server on `port` reports SERVING."""
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str) -> bool:
    """Whether `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_ready(
    checks: dict[str, Callable[[], bool]],
    procs: dict[str, subprocess.Popen[bytes]],
    timeout: float,
    stopping: Callable[[], bool],
) -> None:
    """Wait until every check passes: each service SERVING on gRPC health, the gateway ready."""
    deadline = time.monotonic() + timeout
    pending = dict(checks)
    while pending and time.monotonic() < deadline and not stopping():
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see its log")
        for name in [name for name, check in pending.items() if check()]:
            print(f"switchyard: {name} ready", flush=True)
            del pending[name]
        time.sleep(0.25)
    if stopping():
        raise RuntimeError("interrupted while starting")
    if pending:
        raise TimeoutError(f"not ready after {timeout}s: {', '.join(pending)}")


def main() -> int:
    """Bring the suite up and keep it up until a signal."""
    root = Path(os.environ.get("SWITCHYARD_DATA_DIR", ".data")).resolve()
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    host = os.environ.get("SWITCHYARD_HOST", "127.0.0.1")
    nats_port = _env_int("SWITCHYARD_NATS_PORT", 4222)
    http_port = _env_int("SWITCHYARD_GATEWAY_PORT", 8080)
    key = dev_api_key(root)

    stopping = False

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    print(
        f"switchyard: starting NATS on {host}:{nats_port} and PostgreSQL in {root / 'pg'}",
        flush=True,
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    url = f"http://{host}:{http_port}"
    checks: dict[str, Callable[[], bool]] = {}
    nats: NatsServer | None = None
    postgres: PostgresServer | None = None
    code = 0
    try:
        nats = start_nats(root / "nats", port=nats_port, log_file=logs / "nats.log")
        postgres = start_postgres(root / "pg")
        env = {
            **os.environ,
            "SWITCHYARD_NATS_URL": nats.url,
            "SWITCHYARD_RETRIEVAL_DATABASE_URL": os.environ.get(
                "SWITCHYARD_RETRIEVAL_DATABASE_URL", postgres.uri
            ),
            "SWITCHYARD_GATEWAY_HOST": host,
            "SWITCHYARD_GATEWAY_PORT": str(http_port),
            "SWITCHYARD_GATEWAY_API_KEYS": os.environ.get(
                "SWITCHYARD_GATEWAY_API_KEYS", f"{key}=dev"
            ),
            "SWITCHYARD_GATEWAY_ADMIN_TENANTS": os.environ.get(
                "SWITCHYARD_GATEWAY_ADMIN_TENANTS", "dev"
            ),
        }
        for name in SERVICES:
            health_var = f"SWITCHYARD_{name.upper()}_HEALTH_PORT"
            health_port = int(os.environ.get(health_var) or free_port())
            checks[name] = functools.partial(health_serving, health_port)
            print(f"switchyard: starting {name} (log: {logs / name}.log)", flush=True)
            with open(logs / f"{name}.log", "ab") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"switchyard.{name}"],
                    env={**env, health_var: str(health_port)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        checks["gateway http"] = functools.partial(http_ok, f"{url}/readyz")
        wait_ready(checks, procs, timeout=180, stopping=lambda: stopping)
        print(
            f"\nSwitchyard is up.\n  gateway:  {url}  (OpenAI base URL {url}/v1, docs {url}/docs)\n"
            f"  API key:  {key}  (also in {root / 'dev-api-key'})\n  NATS:     {nats.url}\n"
            f"  Postgres: {postgres.uri}\nPress Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"switchyard: {name} exited with {proc.returncode}", file=sys.stderr)
                    stopping, code = True, 1
            time.sleep(0.5)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("switchyard: stopping", flush=True)
        for name in reversed(list(procs)):
            stop_process(procs[name], timeout=15)
        if nats is not None:
            nats.stop()
        if postgres is not None:
            postgres.stop()
        print("switchyard: stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
