"""The benchmark run: start the mock, Switchyard and LiteLLM, run each scenario against all three
in the same run, write `bench/results/<date>.json` (and a markdown table), optionally refresh
the generated section of docs/benchmarks.md.

Layout on a 2-core machine (`--proxy-cores`, `--load-cores`): the proxy under test on core 0
(Switchyard's gateway + NATS + inference together, or LiteLLM's one worker), the mock provider,
the load generators, py-spy and this harness on core 1. Every target gets the same core.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import report
from bench.profiling import summarise
from bench.stacks import (
    BENCH,
    ROOT,
    Stack,
    pinned,
    raised_fd_limit,
    start_litellm,
    start_mock,
    start_switchyard,
)

SCENARIOS = ("overhead", "throughput", "rates", "streaming", "open_streams", "profile", "memory")
TARGETS = ("direct", "switchyard", "litellm")
# The mock alone once more, on the proxy's core: reached across cores, as a client reaches a
# provider over the network. Through a proxy a request makes two such hops (client to proxy,
# proxy to provider), straight to the provider one, so the latency figures are also taken
# against this baseline: what a proxy adds is then its own work and the one hop it inserts.
HOP = report.HOP
CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
PLAIN = {"model": "mock", "messages": MESSAGES}  # no temperature: Switchyard's cache stays out
STREAM64 = {"model": "stream-64", "stream": True, "messages": MESSAGES}
PACED10 = {"model": "paced-64-10", "stream": True, "messages": MESSAGES}
PACED50 = {"model": "paced-64-50", "stream": True, "messages": MESSAGES}
# A run counts as quiet when steal took at most this share of the machine's CPU time.
STEAL_SHARE = 0.05
MiB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """How long and how often each scenario runs."""

    budget_s: float
    reps: int
    warmup_s: float
    c1_s: float
    load_s: float
    rate_step_s: float
    rate_fractions: tuple[float, ...]
    direct_rates: tuple[int, ...]
    stream_s: float
    paced_s: float
    open_streams: int
    profile_s: float
    soak: dict[str, int] = field(default_factory=dict)
    soak_progress: int = 1000
    fresh_soak: bool = True  # restart each proxy before its soak (a clean heap)
    # The latency scenarios at low load repeat more, in shorter runs: on a shared machine a burst
    # of other work lasts a fraction of a second to a few seconds, and a median over many short
    # interleaved runs is what it moves least.
    c1_reps: int = 3
    paced_reps: int = 1


FULL = Plan(
    budget_s=840,
    reps=3,
    warmup_s=2,
    c1_s=2,
    c1_reps=9,
    load_s=4,
    rate_step_s=4,
    rate_fractions=(0.3, 0.5, 0.7, 0.85, 1.0),
    direct_rates=(1000, 2500, 5000),
    stream_s=3,
    paced_s=3,
    paced_reps=6,  # ~19 streams a run (640 ms each at c=4): many runs for a steady median
    open_streams=1000,
    profile_s=15,
    soak={"switchyard": 100_000, "litellm": 5_000},
    soak_progress=2500,
)
QUICK = Plan(  # under 2 minutes in all, LiteLLM's 11 s start-up included
    budget_s=100,
    reps=1,
    warmup_s=1,
    c1_s=1,
    c1_reps=1,
    load_s=2,
    rate_step_s=2,
    rate_fractions=(0.5, 0.8),
    direct_rates=(2000,),
    stream_s=1.0,
    paced_s=1.0,
    open_streams=100,
    profile_s=5,
    soak={"switchyard": 1500, "litellm": 300},
    soak_progress=250,
    fresh_soak=False,
)


def median(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def now() -> float:
    """Monotonic seconds."""
    return time.monotonic()


class CpuMeter:
    """CPU used between `start` and `stop`: by each stack process, by us and our finished children
    (load generators), and by everything else on the machine (other people's work)."""

    def __init__(self, stacks: list[Stack]) -> None:
        self._stacks = stacks

    def _ours(self) -> tuple[dict[str, float], float, tuple[float, float, float]]:
        per = {
            f"{s.name}/{name}": proc.cpu_seconds()
            for s in self._stacks
            for name, proc in s.procs.items()
        }
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        cpu = psutil.cpu_times()
        processes = cpu.user + cpu.system + cpu.nice
        return per, own, (processes, cpu.irq + cpu.softirq, getattr(cpu, "steal", 0.0))

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, Any]]:
        """Yields a dict filled on exit: `procs` (s per process), `foreign_s` (other processes'
        CPU), `softirq_s` (interrupts and softirqs: mostly the loopback network stack carrying
        the measured traffic, which no process is charged for), `steal_s` (time the hypervisor
        gave these vCPUs to other guests), `wall_s`."""
        out: dict[str, Any] = {}
        per0, own0, sys0 = self._ours()
        t0 = now()
        yield out
        per1, own1, sys1 = self._ours()
        procs = {k: round(per1[k] - per0.get(k, 0.0), 4) for k in per1}
        ours = sum(procs.values()) + (own1 - own0)
        out["procs"] = procs
        out["wall_s"] = round(now() - t0, 3)
        out["foreign_s"] = round(max(0.0, (sys1[0] - sys0[0]) - ours), 3)
        out["softirq_s"] = round(sys1[1] - sys0[1], 3)
        out["steal_s"] = round(sys1[2] - sys0[2], 3)


class RssSampler:
    """Samples the RSS of each process of a stack in a thread; keeps peaks."""

    def __init__(self, stack: Stack, interval: float = 0.25) -> None:
        self._stack = stack
        self._interval = interval
        self._stop = threading.Event()
        self.peak: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, rss in self._stack.rss().items():
                self.peak[name] = max(self.peak.get(name, 0), rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Bench:
    """One benchmark run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan = QUICK if args.quick else FULL
        if args.budget:
            self.plan = Plan(**{**self.plan.__dict__, "budget_s": float(args.budget)})
        if args.soak_requests:
            soak = dict.fromkeys(self.plan.soak, int(args.soak_requests))
            self.plan = Plan(**{**self.plan.__dict__, "soak": soak})
        self.started = now()
        self.deadline = self.started + self.plan.budget_s
        self.workdir = BENCH / ".work" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.workdir.mkdir(parents=True, exist_ok=True)
        prune_workdirs(self.workdir.parent, keep=10)
        self.stacks: dict[str, Stack] = {}
        self.mock: Stack | None = None
        self.hop: Stack | None = None  # the one-hop baseline (HOP), when `direct` is measured
        self.launches: dict[str, int] = {}
        self.results: dict[str, Any] = {}
        self.proxy_cores: str = args.proxy_cores
        self.load_cores: str = args.load_cores

    # -- helpers ------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """Progress on stdout."""
        print(f"[{now() - self.started:6.1f}s] {message}", flush=True)

    def targets(self) -> list[Stack]:
        """The running stacks, in the order direct, switchyard, litellm."""
        return [self.stacks[t] for t in TARGETS if t in self.stacks]

    def latency_targets(self) -> list[Stack]:
        """The targets of the latency scenarios: `targets()` with the one-hop baseline after
        `direct` (when it runs)."""
        stacks = self.targets()
        if self.hop is None or not stacks or stacks[0].name != "direct":
            return stacks
        return [stacks[0], self.hop, *stacks[1:]]

    def cpu(self) -> CpuMeter:
        """A CPU meter over every running stack."""
        return CpuMeter(self.targets() + ([self.hop] if self.hop is not None else []))

    def wrk(self, stack: Stack, conns: int, seconds: float, body: dict[str, Any]) -> dict[str, Any]:
        """Closed-loop load from wrk (one thread) on the load cores; figures in ms."""
        cmd = pinned(
            [
                "wrk",
                "-t1",
                f"-c{conns}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(BENCH / "wrk_post.lua"),
                f"{stack.base_url}{CHAT}",
            ],
            self.load_cores,
        )
        env = {**os.environ, "BENCH_BODY": json.dumps(body), "BENCH_KEY": stack.key or ""}
        with self.cpu().measure() as cpu:
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
            )
        line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        raw = json.loads(line.split(" ", 1)[1])
        requests = raw["requests"]
        stack_cpu = sum(v for k, v in cpu["procs"].items() if k.startswith(f"{stack.name}/"))
        errors = sum(
            raw[k]
            for k in (
                "connect_errors",
                "read_errors",
                "write_errors",
                "status_errors",
                "timeout_errors",
            )
        )
        return {
            "tool": "wrk",
            "connections": conns,
            "requests": requests,
            "errors": errors,
            "rps": requests / (raw["duration_us"] / 1e6),
            "p50_ms": raw["lat_p50_us"] / 1000,
            "p90_ms": raw["lat_p90_us"] / 1000,
            "p99_ms": raw["lat_p99_us"] / 1000,
            "max_ms": raw["lat_max_us"] / 1000,
            "cpu_ms_per_request": 1000 * stack_cpu / requests if requests else None,
            "cpu_by_process_s": {
                k.split("/", 1)[1]: v
                for k, v in cpu["procs"].items()
                if k.startswith(f"{stack.name}/")
            },
            "foreign_cpu_s": cpu["foreign_s"],
            "softirq_s": cpu["softirq_s"],
            "steal_s": cpu["steal_s"],
        }

    def loadgen(
        self,
        stack: Stack,
        spec: dict[str, Any],
        timeout: float,
        on_progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Run bench/loadgen.py on the load cores against `stack`; its JSON result."""
        full = {"port": stack.port, "path": CHAT, "key": stack.key, **spec}
        cmd = pinned([sys.executable, str(BENCH / "loadgen.py"), json.dumps(full)], self.load_cores)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err_lines: list[str] = []
        out_parts: list[str] = []

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith("PROGRESS ") and on_progress is not None:
                    on_progress(int(line.split()[1]))
                else:
                    err_lines.append(line)

        def read_stdout() -> None:
            assert proc.stdout is not None
            out_parts.append(proc.stdout.read())

        readers = [
            threading.Thread(target=read_stderr, daemon=True),
            threading.Thread(target=read_stdout, daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            for reader in readers:
                reader.join(5)
        out = "".join(out_parts)
        if proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"loadgen failed ({proc.returncode}): {''.join(err_lines)[-3000:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    def left(self) -> float:
        """Seconds left in the run's time budget."""
        return self.deadline - now()

    # -- set-up -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the mock and the proxies the run needs; check each answers correctly."""
        wanted = self.args.targets
        self.log(f"work folder {self.workdir.relative_to(ROOT)}")
        self.mock = start_mock(self.workdir, self.load_cores)
        self.stacks["direct"] = self.mock
        if "switchyard" in wanted:
            self.log("starting Switchyard (NATS + inference + gateway)")
            self.stacks["switchyard"] = self.launch("switchyard")
        if "litellm" in wanted:
            self.log("starting the LiteLLM proxy")
            self.stacks["litellm"] = self.launch("litellm")
        for stack in self.targets():
            self.smoke(stack)
        self.results["stacks"] = {
            s.name: {
                "start_to_ready_s": round(s.started_s, 2),
                "idle_rss_mib": {k: round(v / MiB, 1) for k, v in s.idle_rss.items()},
                "pids": {k: p.pid for k, p in s.procs.items()},
            }
            for s in self.targets()
        }
        if "direct" not in wanted:
            self.stacks.pop("direct")  # it keeps serving the proxies, but is not measured
        else:
            self.hop = start_mock(self.workdir, self.proxy_cores)
            self.hop.name = HOP
            self.smoke(self.hop)
        self.log("stacks up: " + ", ".join(f"{s.name} :{s.port}" for s in self.targets()))

    def launch(self, name: str) -> Stack:
        """Start a fresh Switchyard or LiteLLM in front of the mock (own work folder each time)."""
        assert self.mock is not None
        self.launches[name] = self.launches.get(name, 0) + 1
        workdir = self.workdir if self.launches[name] == 1 else self.workdir / f"{name}-fresh"
        workdir.mkdir(parents=True, exist_ok=True)
        start = start_switchyard if name == "switchyard" else start_litellm
        return start(workdir, self.mock.port, self.proxy_cores)

    def relaunch(self, stack: Stack) -> Stack:
        """Stop `stack` and start a fresh one in its place (for the memory soak)."""
        stack.stop()
        fresh = self.launch(stack.name)
        self.stacks[stack.name] = fresh
        self.smoke(fresh)
        return fresh

    def smoke(self, stack: Stack) -> None:
        """A plain and a streamed request must come back right through `stack`."""
        from bench.stacks import http_post

        status, body = http_post(f"{stack.base_url}{CHAT}", PLAIN, stack.headers())
        answer = json.loads(body)
        if status != 200 or answer["choices"][0]["message"]["content"] is None:
            raise RuntimeError(f"{stack.name}: plain request answered {status}: {body[:500]!r}")
        status, body = http_post(f"{stack.base_url}{CHAT}", STREAM64, stack.headers())
        if status != 200 or body.count(b"tok") != 64 or b"[DONE]" not in body:
            raise RuntimeError(f"{stack.name}: streamed request answered {status}: {body[:500]!r}")

    def stop(self) -> None:
        """Stop every stack (by PID)."""
        for stack in reversed(list(self.stacks.values())):
            stack.stop()
        for mock in (self.hop, self.mock):
            if mock is not None:
                mock.stop()

    # -- scenarios ----------------------------------------------------------------------------
    def warmup(self) -> None:
        """Fill connection pools and caches before anything is measured."""
        for stack in self.targets():
            self.wrk(stack, 16, self.plan.warmup_s, PLAIN)
            spec = {"mode": "closed", "concurrency": 4, "count": 8, "body": STREAM64, "chunks": 64}
            self.loadgen(stack, spec, timeout=60)

    def overhead(self) -> dict[str, Any]:
        """Concurrency 1, non-streamed: latency through each target; added = through - direct
        (`added_*`: the mock on the load generator's core; `added_hop_*`: across cores, HOP)."""
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in self.latency_targets()}
        for _ in range(self.plan.c1_reps):
            for stack in self.latency_targets():
                runs[stack.name].append(self.wrk(stack, 1, self.plan.c1_s, PLAIN))
        out: dict[str, Any] = {"runs": runs, "median": {}}
        for name, rs in runs.items():
            out["median"][name] = {
                k: median([r[k] for r in rs if r[k] is not None])
                for k in ("p50_ms", "p99_ms", "rps", "cpu_ms_per_request", "errors")
            }
        # The same over the runs the hypervisor left (nearly) alone: steal time is what moves c=1
        # on a shared host (docs/benchmarks.md, fifth round).
        limit = STEAL_SHARE * self.plan.c1_s * (os.cpu_count() or 1)
        for base, prefix in (("direct", "added"), (HOP, "added_hop")):
            if base not in runs:
                continue
            for name, rs in runs.items():
                if name in ("direct", HOP):
                    continue
                pairs = list(zip(rs, runs[base], strict=True))
                out["median"][name][f"{prefix}_p50_ms"] = median(
                    [a["p50_ms"] - d["p50_ms"] for a, d in pairs]
                )
                out["median"][name][f"{prefix}_p99_ms"] = median(
                    [a["p99_ms"] - d["p99_ms"] for a, d in pairs]
                )
                quiet = [(a, d) for a, d in pairs if (a.get("steal_s") or 0.0) <= limit]
                out["median"][name]["quiet_runs"] = f"{len(quiet)}/{len(pairs)}"
                out["median"][name][f"{prefix}_p50_ms_quiet"] = median(
                    [a["p50_ms"] - d["p50_ms"] for a, d in quiet]
                )
        return out

    def throughput(self) -> dict[str, Any]:
        """Concurrency 16 and 64, non-streamed, closed loop (wrk): requests/s and latency."""
        out: dict[str, Any] = {}
        for conns in (16, 64):
            runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in self.targets()}
            for _ in range(self.plan.reps):
                for stack in self.targets():
                    runs[stack.name].append(self.wrk(stack, conns, self.plan.load_s, PLAIN))
            out[f"c{conns}"] = {
                "runs": runs,
                "median": {
                    name: {
                        k: median([r[k] for r in rs if r[k] is not None])
                        for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request", "errors")
                    }
                    for name, rs in runs.items()
                },
            }
        return out

    def rates(self) -> dict[str, Any]:
        """Open-loop fixed rates (bench/loadgen.py; wrk2 is not packaged): the highest rate held
        with p99 ≤ 50 ms, no errors and ≥ 95 % of the rate delivered. Proxies step through
        fractions of their c=16 saturation throughput; the mock through fixed rates up to what
        the Python generator can send."""
        saturation = self.results.get("throughput", {}).get("c16", {}).get("median", {})
        out: dict[str, Any] = {}
        for stack in self.targets():
            if stack.name == "direct":
                steps = [float(r) for r in self.plan.direct_rates]
            else:
                peak = (saturation.get(stack.name) or {}).get("rps")
                if not peak:
                    peak = self.wrk(stack, 16, self.plan.load_s, PLAIN)["rps"]
                steps = [round(peak * f, 1) for f in self.plan.rate_fractions]
            held: float | None = None
            results = []
            for rate in steps:
                spec = {
                    "mode": "rate",
                    "rate": rate,
                    "duration": self.plan.rate_step_s,
                    "timeout": 5,
                    "max_conns": 512,
                    "body": PLAIN,
                }
                with self.cpu().measure() as cpu:
                    r = self.loadgen(stack, spec, timeout=self.plan.rate_step_s + 30)
                ok = (
                    not r["errors"]
                    and r["latency_ms"].get("p99", 1e9) <= 50
                    and r["achieved_rps"] >= 0.95 * rate
                )
                results.append(
                    {
                        "rate": rate,
                        "achieved_rps": round(r["achieved_rps"], 1),
                        "p50_ms": r["latency_ms"].get("p50"),
                        "p99_ms": r["latency_ms"].get("p99"),
                        "errors": r["errors"],
                        "send_lag_p99_ms": r["send_lag_ms"].get("p99"),
                        "held": ok,
                        "foreign_cpu_s": cpu["foreign_s"],
                        "steal_s": cpu["steal_s"],
                    }
                )
                if ok:
                    held = rate
                else:
                    break
            out[stack.name] = {
                "steps": results,
                "held_rps": held,
                "generator_limited": stack.name == "direct" and held == steps[-1],
            }
        return out

    def streaming(self) -> dict[str, Any]:
        """Streams of 64 chunks. `ttft`: unpaced (the upstream sends all 64 at once), concurrency 1
        (time to first token, gaps). `paced`: 10 ms between chunks, concurrency 4 (time to first
        token, one-way latency of each chunk).
        `relay`: unpaced, concurrency 16: chunks relayed per CPU-second of the proxy."""
        ttft: dict[str, list[dict[str, Any]]] = {s.name: [] for s in self.latency_targets()}
        relay: dict[str, list[dict[str, Any]]] = {s.name: [] for s in self.latency_targets()}
        paced: dict[str, list[dict[str, Any]]] = {s.name: [] for s in self.latency_targets()}
        for _ in range(self.plan.reps):
            for stack in self.latency_targets():
                r = self.loadgen(
                    stack,
                    {
                        "mode": "closed",
                        "concurrency": 1,
                        "duration": self.plan.stream_s,
                        "body": STREAM64,
                        "chunks": 64,
                    },
                    timeout=self.plan.stream_s + 60,
                )
                ttft[stack.name].append(r)
                if stack.name == HOP:
                    continue  # a latency baseline: the mock's CPU per chunk is `direct`'s
                with self.cpu().measure() as cpu:
                    r = self.loadgen(
                        stack,
                        {
                            "mode": "closed",
                            "concurrency": 16,
                            "duration": self.plan.stream_s,
                            "body": STREAM64,
                            "chunks": 64,
                        },
                        timeout=self.plan.stream_s + 90,
                    )
                used = sum(v for k, v in cpu["procs"].items() if k.startswith(f"{stack.name}/"))
                r["proxy_cpu_s"] = used
                r["chunks_per_cpu_s"] = r["chunks"] / used if used else None
                r["foreign_cpu_s"] = cpu["foreign_s"]
                r["steal_s"] = cpu["steal_s"]
                r["cpu_by_process_s"] = {
                    k.split("/", 1)[1]: v
                    for k, v in cpu["procs"].items()
                    if k.startswith(f"{stack.name}/")
                }
                relay[stack.name].append(r)
        for _ in range(self.plan.paced_reps):
            for stack in self.latency_targets():
                paced[stack.name].append(
                    self.loadgen(
                        stack,
                        {
                            "mode": "closed",
                            "concurrency": 4,  # 400 chunks/s in all: light load, more samples
                            "stagger": 0.64,  # clients start a quarter-stream apart: no queue
                            "duration": self.plan.paced_s,
                            "body": PACED10,
                            "chunks": 64,
                        },
                        timeout=self.plan.paced_s + 60,
                    )
                )
        summary: dict[str, Any] = {}
        for name, runs in ttft.items():
            summary[name] = {
                "ttft_p50_ms": median([r["ttft_ms"]["p50"] for r in runs if r["ok"]]),
                "ttft_p99_ms": median([r["ttft_ms"]["p99"] for r in runs if r["ok"]]),
                "gap_unpaced_p50_ms": median([r["gap_ms"]["p50"] for r in runs if r["ok"]]),
                "stream_errors": sum(sum(r["errors"].values()) for r in runs + relay[name]),
                "ttft_paced_p50_ms": _median_of(paced[name], "ttft_ms", "p50"),
                "chunk_latency_p50_ms": _median_of(paced[name], "chunk_latency_ms", "p50"),
                "chunk_latency_p99_ms": _median_of(paced[name], "chunk_latency_ms", "p99"),
                "gap_paced_p50_ms": _median_of(paced[name], "gap_ms", "p50"),
                "gap_paced_p99_ms": _median_of(paced[name], "gap_ms", "p99"),
                "chunks_per_cpu_s": median(
                    [r["chunks_per_cpu_s"] for r in relay[name] if r["chunks_per_cpu_s"]]
                ),
                "streams_per_s_c16": median([r["rps"] for r in relay[name]]),
            }
        for base_name, prefix in (("direct", "added"), (HOP, "added_hop")):
            base = summary.get(base_name)
            if base is None:
                continue
            for name, s in summary.items():
                if name in ("direct", HOP):
                    continue
                s[f"{prefix}_ttft_p50_ms"] = _minus(s["ttft_p50_ms"], base["ttft_p50_ms"])
                s[f"{prefix}_ttft_paced_p50_ms"] = _minus(
                    s["ttft_paced_p50_ms"], base["ttft_paced_p50_ms"]
                )
                s[f"{prefix}_chunk_latency_p50_ms"] = _minus(
                    s["chunk_latency_p50_ms"], base["chunk_latency_p50_ms"]
                )
        return {"summary": summary, "ttft_runs": ttft, "relay_runs": relay, "paced_runs": paced}

    def open_streams(self) -> dict[str, Any]:
        """`open_streams` streams at once (64 chunks, 50 ms apart): errors, peak RSS."""
        out: dict[str, Any] = {}
        count = self.plan.open_streams
        for stack in self.targets():
            before = stack.rss()
            with RssSampler(stack) as sampler, self.cpu().measure() as cpu:
                r = self.loadgen(
                    stack,
                    {
                        "mode": "open",
                        "count": count,
                        "ramp": 0.5,
                        "timeout": 60,
                        "body": PACED50,
                        "chunks": 64,
                    },
                    timeout=150,
                )
            stack.check_alive()
            out[stack.name] = {
                "streams": count,
                "ok": r["ok"],
                "errors": r["errors"],
                "error_count": sum(r["errors"].values()),
                "peak_open": r["peak_open"],
                "elapsed_s": round(r["elapsed_s"], 2),
                "stream_ms_p50": r["stream_ms"].get("p50"),
                "stream_ms_p99": r["stream_ms"].get("p99"),
                "ttft_p99_ms": r["ttft_ms"].get("p99"),
                "rss_before_mib": {k: round(v / MiB, 1) for k, v in before.items()},
                "rss_peak_mib": {k: round(v / MiB, 1) for k, v in sampler.peak.items()},
                "cpu_by_process_s": {
                    k.split("/", 1)[1]: v
                    for k, v in cpu["procs"].items()
                    if k.startswith(f"{stack.name}/")
                },
            }
        return out

    def profile(self) -> dict[str, Any]:
        """py-spy on the gateway and inference under c=16 load: non-streamed, then streamed."""
        stack = self.stacks.get("switchyard")
        if stack is None:
            return {"skipped": "switchyard is not a target"}
        pyspy = Path(sys.executable).parent / "py-spy"
        if not pyspy.exists():
            return {"skipped": "py-spy is not installed (pip install -r requirements-dev.txt)"}
        out: dict[str, Any] = {}
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        seconds = self.plan.profile_s
        for label, body in (("plain", PLAIN), ("stream64", STREAM64)):
            spies: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
            for name in ("gateway", "inference"):
                path = Path(self.args.out_dir) / f"profile-{stamp}-{label}-{name}.speedscope.json"
                cmd = pinned(
                    [
                        str(pyspy),
                        "record",
                        "--native",
                        "--gil",
                        "-r",
                        "100",
                        "-d",
                        str(round(seconds)),
                        "-p",
                        str(stack.procs[name].pid),
                        "--format",
                        "speedscope",
                        "-o",
                        str(path),
                    ],
                    self.load_cores,
                )
                log = open(self.workdir / f"py-spy-{label}-{name}.log", "wb")  # noqa: SIM115
                spies[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), path)
            time.sleep(0.5)
            if label == "plain":
                load = self.wrk(stack, 16, seconds + 1, body)
            else:
                load = self.loadgen(
                    stack,
                    {
                        "mode": "closed",
                        "concurrency": 16,
                        "duration": seconds + 1,
                        "body": body,
                        "chunks": 64,
                    },
                    timeout=seconds + 90,
                )
            entry: dict[str, Any] = {
                "load": {k: v for k, v in load.items() if not isinstance(v, dict | list)}
            }
            for name, (proc, path) in spies.items():
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                entry[name] = (
                    summarise(path) if path.exists() else {"error": f"py-spy wrote no {path}"}
                )
                if path.exists():
                    entry[name]["file"] = str(path.relative_to(ROOT))
            out[label] = entry
        return out

    def _rps(self, stack: Stack) -> float:
        """The c=16 throughput measured for `stack` (a guess when not measured)."""
        rps = _get(self.results, "throughput", "c16", "median", stack.name, "rps")
        return float(rps) if isinstance(rps, int | float) and rps > 0 else 50.0

    def memory(self) -> dict[str, Any]:
        """Idle RSS (at start) and RSS across a soak of N non-streamed requests at c=16 on a
        freshly started stack, sampled every `soak_progress` requests; growth after the first
        10 % (warm-up) counts."""
        out: dict[str, Any] = {}
        order = [s for s in self.targets() if s.name in self.plan.soak]
        for i, earlier in enumerate(order):
            # A fresh process: a heap already grown by the earlier scenarios (1,000 streams)
            # would absorb a slow leak without any RSS growth.
            stack = earlier
            if self.plan.fresh_soak:
                self.log(f"memory soak: restarting {earlier.name} for a fresh heap")
                stack = self.relaunch(earlier)
            count = self.plan.soak[stack.name]
            # Leave time for the later soaks (at their c=16 rate) and for stopping everything.
            reserve = 15 + sum(
                min(150.0, self.plan.soak[later.name] / self._rps(later)) + 15
                for later in order[i + 1 :]
            )
            cap = max(10.0, self.left() - reserve)
            samples: list[dict[str, Any]] = [{"requests": 0, **_mib(stack.rss())}]

            def sample(
                n: int, stack: Stack = stack, samples: list[dict[str, Any]] = samples
            ) -> None:
                samples.append({"requests": n, **_mib(stack.rss())})

            spec = {
                "mode": "closed",
                "concurrency": 16,
                "count": count,
                "duration": cap,
                "timeout": 10,
                "body": PLAIN,
                "progress_every": self.plan.soak_progress,
            }
            self.log(f"memory soak: {stack.name}, {count} requests (at most {cap:.0f}s)")
            r = self.loadgen(stack, spec, timeout=cap + 60, on_progress=sample)
            time.sleep(0.5)
            samples.append({"requests": r["requests"], **_mib(stack.rss())})
            stack.check_alive()
            out[stack.name] = {
                "fresh_process": self.plan.fresh_soak,
                "fresh_rss_mib": _mib(stack.idle_rss),
                "requested": count,
                "done": r["requests"],
                "ok": r["ok"],
                "errors": r["errors"],
                "rps": round(r["rps"], 1),
                "idle_rss_mib": _mib(stack.idle_rss),
                "samples": samples,
                "growth": _growth(samples),
                "time_capped": r["requests"] < count,
            }
        return out

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Every chosen scenario, against every target, in one run."""
        load0 = os.getloadavg()
        self.results["meta"] = machine_info()
        self.results["meta"].update(
            quick=self.args.quick,
            scenarios=self.args.scenarios,
            targets=self.args.targets,
            proxy_cores=self.proxy_cores,
            load_cores=self.load_cores,
            hop_baseline="direct" in self.args.targets,
            loadavg_at_start=[round(x, 2) for x in load0],
            plan=dict(self.plan.__dict__),
        )
        if load0[0] > 0.5:
            self.log(f"note: load average {load0[0]:.2f}: other work is running; expect noise")
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {int(c) for c in self.load_cores.split(",")})
        try:
            self.start()
            self.results["meta"]["versions"].update(
                {k: v for s in self.targets() for k, v in s.versions.items()}
            )
            self.results["idle_cpu"] = self.idle_cpu(1.0 if self.args.quick else 3.0)
            self.log("warm-up")
            self.warmup()
            for name in SCENARIOS:
                if name not in self.args.scenarios:
                    continue
                self.log(f"scenario {name}")
                t0, l0 = now(), os.getloadavg()[0]
                result = getattr(self, name)()
                result["_wall_s"] = round(now() - t0, 1)
                result["_loadavg"] = [round(l0, 2), round(os.getloadavg()[0], 2)]
                self.results[name] = result
                for stack in self.targets():
                    stack.check_alive()
        finally:
            self.stop()
        self.results["meta"]["wall_s"] = round(now() - self.started, 1)
        self.results["meta"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self.results["summary"] = report.summary(self.results)
        return self.results

    def idle_cpu(self, seconds: float = 3.0) -> dict[str, float]:
        """CPU each stack burns while idle (background timers, health checks), in % of a core."""
        with self.cpu().measure() as cpu:
            time.sleep(seconds)
        per: dict[str, float] = {}
        for key, used in cpu["procs"].items():
            name = key.split("/", 1)[0]
            per[name] = per.get(name, 0.0) + used
        return {k: round(100 * v / seconds, 2) for k, v in per.items()}


def prune_workdirs(folder: Path, keep: int) -> None:
    """Delete all but the `keep` newest run folders (named like 20260101-120000) under `folder`:
    each keeps the services' logs, tens of MB for a full run."""
    import re
    import shutil

    pattern = re.compile(r"\d{8}-\d{6}")
    runs = sorted(p for p in folder.iterdir() if p.is_dir() and pattern.fullmatch(p.name))
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    """The median over `runs` of the figure at `path` (runs without it left out)."""
    return median([v for r in runs if isinstance(v := _get(r, *path), int | float)])


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _mib(rss: dict[str, int]) -> dict[str, float]:
    return {k: round(v / MiB, 1) for k, v in rss.items()}


def _growth(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS growth per process after warm-up (the first 10 % of the soak), and its slope."""
    total = samples[-1]["requests"]
    warm = [s for s in samples if s["requests"] >= 0.1 * total] or samples
    out: dict[str, Any] = {}
    for name in (k for k in samples[-1] if k != "requests"):
        first, last = warm[0][name], samples[-1][name]
        xs = [s["requests"] for s in warm]
        ys = [s[name] for s in warm]
        slope = None
        if len(xs) >= 3 and max(xs) > min(xs):
            slope = statistics.linear_regression(xs, ys).slope * 100_000
        out[name] = {
            "after_warmup_mib": first,
            "end_mib": last,
            "growth_mib": round(last - first, 1),
            "slope_mib_per_100k": None if slope is None else round(slope, 1),
        }
    return out


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, memory, kernel, versions."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break

    def run(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "unknown"
        return (
            (done.stdout or done.stderr).strip().splitlines()[0]
            if (done.stdout or done.stderr)
            else "unknown"
        )

    from importlib.metadata import version

    def pkg(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "unknown"

    commit = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "libs", "services"])
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": run(["nproc"]),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "git_commit": commit,
        "git_dirty_code": dirty not in ("", "unknown"),
        "versions": {
            "python": platform.python_version(),
            "switchyard": pkg("switchyard-gateway"),
            "fastapi": pkg("fastapi"),
            "starlette": pkg("starlette"),
            "uvicorn": pkg("uvicorn"),
            "pydantic": pkg("pydantic"),
            "nats-py": pkg("nats-py"),
            "nats-server": run([str(Path(sys.executable).parent / "nats-server"), "--version"]),
            "faststream": pkg("faststream"),
            "httpx": pkg("httpx"),
            "uvloop": pkg("uvloop"),
            "wrk": run(["wrk", "--version"]).split(" [")[0],
            "py-spy": run([str(Path(sys.executable).parent / "py-spy"), "--version"]),
        },
    }


def ensure_wrk() -> None:
    """Install Debian's wrk when it is missing (apt-get, as root)."""
    if subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True, check=False).returncode:
        print("installing wrk (apt-get)", flush=True)
        apt = ["apt-get", "install", "-y", "-q", "wrk"]
        if os.geteuid() != 0:
            apt = ["sudo", "-n", *apt]
        if subprocess.run(apt, check=False).returncode != 0:
            subprocess.run([*apt[:-3], "update", "-q"], check=False)
            subprocess.run(apt, check=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark Switchyard against a mock provider directly and the LiteLLM proxy.",
    )
    parser.add_argument("--quick", action="store_true", help="short run (under 2 minutes)")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=None,
        help="scenarios to run (default: all; --quick skips profile)",
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=TARGETS,
        default=list(TARGETS),
        help="what to measure (the mock always runs)",
    )
    parser.add_argument("--out", help="results JSON (default bench/results/<date>[-quick].json)")
    parser.add_argument("--docs", help="refresh the generated section of this markdown file")
    parser.add_argument("--proxy-cores", default="0", help="taskset cores of the proxy under test")
    parser.add_argument("--load-cores", default="1", help="cores of mock, load generators, py-spy")
    parser.add_argument("--budget", type=float, help="time budget in seconds (memory soak fits)")
    parser.add_argument("--soak-requests", type=int, help="requests per memory soak")
    args = parser.parse_args(argv)
    if args.scenarios is None:
        args.scenarios = [s for s in SCENARIOS if not (args.quick and s == "profile")]
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    args.out = args.out or str(BENCH / "results" / f"{stamp}{'-quick' if args.quick else ''}.json")
    args.out = str(Path(args.out).resolve())
    args.out_dir = str(Path(args.out).parent)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write the JSON results and the markdown table."""
    args = parse_args(argv)
    ensure_wrk()
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    with raised_fd_limit():
        results = bench.run()
    results["meta"]["command"] = " ".join(["bench/run.py", *(argv or sys.argv[1:])])
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2) + "\n")
    table = report.render(results)
    out.with_suffix(".md").write_text(table)
    print(table)
    print(f"results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.docs:
        report.update_docs(Path(args.docs), table)
        print(f"updated {args.docs}")
    return 0
