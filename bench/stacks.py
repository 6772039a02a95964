"""The processes a benchmark runs: the mock provider, Switchyard's stack, the LiteLLM proxy.

Every process is started by us, pinned with `taskset` where asked, logged to a file under the
run's work folder, and stopped by its PID (SIGTERM, then SIGKILL) — never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from switchyard.runtime.embedded import (
    free_port,
    nats_command,
    nats_environment,
    stop_process,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LITELLM_VERSION = "1.108.7"
LITELLM_VENV = BENCH / ".venv-litellm"
SWITCHYARD_KEY = "bench-key"
LITELLM_KEY = "sk-bench-key"  # LiteLLM wants master keys to start with sk-

# Model names the mock understands (see bench/mock_provider.py): each proxy maps them 1:1.
MODELS = ("mock", "stream-64", "paced-64-10", "paced-64-50")
# LiteLLM fetches files at start-up and on import unless told to use its local copies.
LITELLM_OFFLINE_ENV = {
    "LITELLM_TELEMETRY_DISABLED": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def pinned(cmd: list[str], cores: str | None) -> list[str]:
    """`cmd` run under `taskset -c cores` (unpinned when `cores` is None or taskset is missing)."""
    taskset = shutil.which("taskset")
    if cores is None or taskset is None:
        return cmd
    return [taskset, "-c", cores, *cmd]


@dataclass
class Proc:
    """A process we started."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """Its PID."""
        return self.popen.pid

    def tree(self) -> list[psutil.Process]:
        """The process and its descendants (LiteLLM may fork)."""
        try:
            top = psutil.Process(self.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process tree."""
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss(self) -> int:
        """Resident set size of the process tree, in bytes."""
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID, wait, SIGKILL if needed."""
        stop_process(self.popen, timeout=timeout)

    def tail(self, chars: int = 3000) -> str:
        """The end of its log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def spawn(name: str, cmd: list[str], workdir: Path, env: dict[str, str] | None = None) -> Proc:
    """Start `cmd` with `env` added to ours, stdout and stderr to `workdir/<name>.log`."""
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
    return Proc(name, popen, log)


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> int:
    """The status of a GET (0 when unreachable)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


def http_post(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    """POST JSON; (status, body)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(
    url: str, procs: list[Proc], timeout: float, headers: dict[str, str] | None = None
) -> None:
    """Poll `url` until it answers 200; fail early when one of `procs` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        if http_get(url, headers) == 200:
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s\n{tails}")


@dataclass
class Stack:
    """One thing a load generator talks to: the mock itself, Switchyard, or LiteLLM."""

    name: str
    port: int
    key: str | None
    procs: dict[str, Proc] = field(default_factory=dict)
    started_s: float = 0.0
    idle_rss: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL's origin."""
        return f"http://{self.host}:{self.port}"

    def headers(self) -> dict[str, str]:
        """Authorization headers."""
        return {"authorization": f"Bearer {self.key}"} if self.key else {}

    def cpu_seconds(self) -> float:
        """CPU time of every process of the stack."""
        return sum(p.cpu_seconds() for p in self.procs.values())

    def rss(self) -> dict[str, int]:
        """RSS of each process of the stack."""
        return {name: p.rss() for name, p in self.procs.items()}

    def check_alive(self) -> None:
        """Raise if a process of the stack died."""
        for proc in self.procs.values():
            if not proc.alive():
                raise RuntimeError(f"{self.name}/{proc.name} died:\n{proc.tail()}")

    def stop(self) -> None:
        """Stop every process, last started first."""
        for proc in reversed(list(self.procs.values())):
            with contextlib.suppress(Exception):
                proc.stop()


def _settle_rss(stack: Stack) -> None:
    time.sleep(1.0)
    stack.idle_rss = stack.rss()


def start_mock(workdir: Path, cores: str | None) -> Stack:
    """The mock provider as its own process."""
    port = free_port()
    proc = spawn(
        "mock",
        pinned([sys.executable, str(BENCH / "mock_provider.py"), "--port", str(port)], cores),
        workdir,
    )
    stack = Stack("direct", port, None, {"mock": proc})
    started = time.monotonic()
    try:
        wait_for_port("127.0.0.1", port, timeout=15, proc=proc.popen)
        wait_ready(f"{stack.base_url}/health", [proc], timeout=15)
    except Exception:
        stack.stop()
        raise
    stack.started_s = time.monotonic() - started
    _settle_rss(stack)
    return stack


def switchyard_models(mock_port: int) -> dict[str, Any]:
    """The model table: each bench model points at the mock under the same name.

    `paced-64-50` (the 1,000-open-streams scenario) raises the deployment's `max_concurrency`
    from its default 256, which would otherwise answer `overloaded` to streams 257 and up.
    """
    base = f"http://127.0.0.1:{mock_port}/v1"
    table: dict[str, Any] = {
        name: {"provider": "openai", "base_url": base, "upstream_model": name} for name in MODELS
    }
    table["paced-64-50"]["max_concurrency"] = 2048
    return table


def start_switchyard(workdir: Path, mock_port: int, cores: str | None) -> Stack:
    """NATS (JetStream), inference and the gateway, as processes, as `make run` starts them.

    Features a user runs stay on: API-key auth, a per-tenant rate limit (set too high to refuse
    anything, so its check runs on every request), tracing (always installed), JSON logs at INFO,
    the response cache (used only for temperature 0 or `x-switchyard-cache: on`).
    """
    nats_port, gateway_port = free_port(), free_port()
    store = workdir / "nats-store"
    store.mkdir(parents=True, exist_ok=True)
    stack = Stack("switchyard", gateway_port, SWITCHYARD_KEY)
    started = time.monotonic()
    try:
        nats = spawn(
            "nats",
            pinned(nats_command(store, nats_port), cores),
            workdir,
            nats_environment(),  # as `make run` starts it (see embedded.NATS_GODEBUG)
        )
        stack.procs["nats"] = nats
        wait_for_port("127.0.0.1", nats_port, timeout=15, proc=nats.popen)
        common = {"SWITCHYARD_NATS_URL": f"nats://127.0.0.1:{nats_port}"}
        stack.procs["inference"] = spawn(
            "inference",
            pinned([sys.executable, "-m", "switchyard.inference"], cores),
            workdir,
            {**common, "SWITCHYARD_INFERENCE_MODELS": json.dumps(switchyard_models(mock_port))},
        )
        stack.procs["gateway"] = spawn(
            "gateway",
            pinned([sys.executable, "-m", "switchyard.gateway"], cores),
            workdir,
            {
                **common,
                "SWITCHYARD_GATEWAY_PORT": str(gateway_port),
                "SWITCHYARD_GATEWAY_API_KEYS": SWITCHYARD_KEY,
                "SWITCHYARD_GATEWAY_RATE_LIMIT": "1000000",
            },
        )
        procs = list(stack.procs.values())
        wait_ready(f"{stack.base_url}/readyz", procs, timeout=60)
        wait_ready(f"{stack.base_url}/v1/models", procs, timeout=60, headers=stack.headers())
    except Exception:
        stack.stop()
        raise
    stack.started_s = time.monotonic() - started
    stack.versions = {"switchyard": _dist_version("switchyard-gateway")}
    _settle_rss(stack)
    return stack


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def ensure_litellm(log: Path) -> Path:
    """`litellm[proxy]==1.108.7` in its own virtual environment (installed once, then reused)."""
    python = LITELLM_VENV / "bin" / "python"
    marker = LITELLM_VENV / ".installed"
    if python.exists() and marker.exists() and marker.read_text().strip() == LITELLM_VERSION:
        return LITELLM_VENV / "bin" / "litellm"
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (once)", flush=True)
    with open(log, "ab") as out:
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True, stdout=out
            )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    marker.write_text(LITELLM_VERSION + "\n")
    return LITELLM_VENV / "bin" / "litellm"


def litellm_config(mock_port: int) -> str:
    """LiteLLM's proxy config: the bench models on the mock, a master key, no database."""
    lines = ["model_list:"]
    for name in MODELS:
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: openai/{name}",
            f"      api_base: http://127.0.0.1:{mock_port}/v1",
            "      api_key: sk-mock-upstream",
        ]
    lines += ["general_settings:", f"  master_key: {LITELLM_KEY}", ""]
    return "\n".join(lines)


def start_litellm(workdir: Path, mock_port: int, cores: str | None) -> Stack:
    """The LiteLLM proxy: one worker, master key on, no database, offline."""
    binary = ensure_litellm(workdir / "litellm-install.log")
    config = workdir / "litellm.yaml"
    config.write_text(litellm_config(mock_port))
    port = free_port()
    stack = Stack("litellm", port, LITELLM_KEY)
    started = time.monotonic()
    try:
        stack.procs["litellm"] = spawn(
            "litellm",
            pinned(
                [
                    str(binary),
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--num_workers",
                    "1",
                ],
                cores,
            ),
            workdir,
            LITELLM_OFFLINE_ENV,
        )
        wait_ready(f"{stack.base_url}/health/liveliness", list(stack.procs.values()), timeout=120)
    except Exception:
        stack.stop()
        raise
    stack.started_s = time.monotonic() - started
    version = subprocess.run(
        [
            str(LITELLM_VENV / "bin" / "python"),
            "-c",
            "from importlib.metadata import version; print(version('litellm'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    stack.versions = {"litellm": version.stdout.strip() or "unknown"}
    _settle_rss(stack)
    return stack


@contextlib.contextmanager
def raised_fd_limit() -> Iterator[None]:
    """Raise our (and so our children's) open-file limit to the hard limit: 1,000 open streams
    need more than the usual 1,024 descriptors in some processes."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
