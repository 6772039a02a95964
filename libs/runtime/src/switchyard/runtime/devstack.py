"""`make run`: the whole suite on one machine with the embedded default stack.

Starts NATS (JetStream) and PostgreSQL + pgvector with their data under `.data/`, then every
service as its own process, waits until the gateway is ready, prints its URL and a dev API key
(also written to `.data/dev-api-key`). Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

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

from switchyard.runtime.embedded import start_nats, start_postgres, stop_process

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


def wait_ready(
    url: str,
    timeout: float,
    procs: dict[str, subprocess.Popen[bytes]],
    stopping: Callable[[], bool],
) -> None:
    """Poll the gateway's `/readyz` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see .data/logs/{name}.log"
                )
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    if stopping():
        raise RuntimeError("interrupted while starting")
    raise TimeoutError(f"gateway not ready at {url} after {timeout}s")


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
    nats = start_nats(root / "nats", port=nats_port, host="127.0.0.1", log_file=logs / "nats.log")
    postgres = start_postgres(root / "pg")
    env = {
        **os.environ,
        "SWITCHYARD_NATS_URL": nats.url,
        "SWITCHYARD_RETRIEVAL_DATABASE_URL": os.environ.get(
            "SWITCHYARD_RETRIEVAL_DATABASE_URL", postgres.uri
        ),
        "SWITCHYARD_GATEWAY_HOST": host,
        "SWITCHYARD_GATEWAY_PORT": str(http_port),
        "SWITCHYARD_GATEWAY_API_KEYS": os.environ.get("SWITCHYARD_GATEWAY_API_KEYS", f"{key}=dev"),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    code = 0
    try:
        for name in SERVICES:
            print(f"switchyard: starting {name} (log: {logs / name}.log)", flush=True)
            with open(logs / f"{name}.log", "ab") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"switchyard.{name}"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        url = f"http://{host}:{http_port}"
        wait_ready(f"{url}/readyz", timeout=180, procs=procs, stopping=lambda: stopping)
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
    except (RuntimeError, TimeoutError) as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("switchyard: stopping", flush=True)
        for name in reversed(list(procs)):
            stop_process(procs[name], timeout=15)
        nats.stop()
        postgres.stop()
        print("switchyard: stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
