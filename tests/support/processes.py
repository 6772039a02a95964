"""Start the suite's services as real processes for tests, and stop them by PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from switchyard.runtime.embedded import stop_process


@dataclass
class Service:
    """A service process and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        """SIGTERM, wait, kill if needed; returns the exit code."""
        return stop_process(self.proc, timeout=15)

    def log_text(self) -> str:
        """What the service logged so far."""
        return self.log.read_text(errors="replace")


def start_service(name: str, env: dict[str, str], log_dir: Path) -> Service:
    """`python -m switchyard.<name>` with `env` added to ours."""
    log = log_dir / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"switchyard.{name}"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Service(name, proc, log)


def wait_http(
    url: str, service: Service, timeout: float = 180.0, headers: dict[str, str] | None = None
) -> None:
    """Poll `url` until it answers 200 (fail early if the process died)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise RuntimeError(f"{service.name} exited:\n{service.log_text()[-4000:]}")
        try:
            response = httpx.get(url, headers=headers, timeout=1)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready: {last}\n{service.log_text()[-4000:]}")
