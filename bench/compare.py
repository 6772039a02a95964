"""Compare Switchyard variants side by side: each variant is a folder holding `libs/` and
`services/` (a copy of the tree with a change, or a checkout of another commit); every variant's
stack runs at once against one mock, and each measurement runs for every variant back to back,
in an order that alternates each repetition (A B, then B A), so a stretch of other work on the
machine hits every variant alike.

    .venv/bin/python bench/compare.py base=/tmp/copy-of-main fix=. --reps 5

Per variant (medians): c=1 latency p50 and p99 and CPU per request (wrk), c=16 throughput and
CPU per request of each process (gateway, inference, NATS), time to first token of a 64-chunk
stream at c=1 (and of paced streams at c=4), and CPU per streamed chunk of each process at
c=16. CPU per request is the steadiest figure on a shared machine. The ratio to the first
variant is the median of the per-repetition ratios. `--only c1 ttft` measures only those (shorter
repetitions, so more of them fit: `--reps 15 --seconds 1`). `--env NAME:KEY=VALUE` starts one
variant's processes with a setting, so one tree can be compared with itself under two settings:

    .venv/bin/python bench/compare.py old=. new=. --env old:GODEBUG=schedtrace=0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.stacks import ROOT, Stack, raised_fd_limit, start_mock, start_switchyard

PACKAGES = ("libs/contracts", "libs/runtime", "services/gateway", "services/inference")
PACKAGES_OPTIONAL = ("services/retrieval", "services/tools")
MEASUREMENTS = ("c1", "c16", "ttft", "paced", "chunks")


def pythonpath(root: Path) -> str:
    """A PYTHONPATH that imports Switchyard from `root` before the editable install."""
    parts = [root / p / "src" for p in PACKAGES]
    parts += [root / p / "src" for p in PACKAGES_OPTIONAL if (root / p / "src").is_dir()]
    missing = [str(p) for p in parts if not p.is_dir()]
    if missing:
        raise SystemExit(f"not a Switchyard tree: {', '.join(missing)} missing")
    return ":".join(str(p) for p in parts)


class Compare(harness.Bench):
    """A Bench whose targets are Switchyard variants."""

    def __init__(
        self,
        args: argparse.Namespace,
        variants: dict[str, Path],
        envs: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__(args)
        self.variants = variants
        self.envs = envs or {}  # per variant: environment its processes start with
        self.order: list[str] = []

    def targets(self) -> list[Stack]:
        """The variants' stacks, in command-line order."""
        return [self.stacks[name] for name in self.order]

    def start_variants(self) -> None:
        """The mock and one Switchyard stack per variant."""
        self.mock = start_mock(self.workdir, self.load_cores)
        for name, root in self.variants.items():
            env = {"PYTHONPATH": pythonpath(root), **self.envs.get(name, {})}
            saved = {key: os.environ.get(key) for key in env}
            os.environ.update(env)
            try:
                workdir = self.workdir / name
                workdir.mkdir(parents=True, exist_ok=True)
                extra = "".join(f" {k}={v}" for k, v in env.items() if k != "PYTHONPATH")
                self.log(f"starting variant {name} from {root}{extra}")
                stack = start_switchyard(workdir, self.mock.port, self.proxy_cores)
                stack.name = name
                self.stacks[name] = stack
                self.order.append(name)
                self.smoke(stack)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    def measure(
        self, reps: int, seconds: float, only: set[str] | None = None
    ) -> dict[str, dict[str, list[float]]]:
        """Interleaved repetitions; every figure of every repetition (of the measurements in
        `only`, or all of them)."""
        out: dict[str, dict[str, list[float]]] = {name: {} for name in self.order}
        wanted = only or set(MEASUREMENTS)

        def add(name: str, key: str, value: float | None) -> None:
            if value is not None:
                out[name].setdefault(key, []).append(value)

        for stack in self.targets():
            self.wrk(stack, 16, 2, harness.PLAIN)
        spec: dict[str, Any] = {
            "mode": "closed",
            "concurrency": 1,
            "duration": seconds / 2,
            "body": harness.STREAM64,
            "chunks": 64,
        }
        for rep in range(reps):
            # Each measurement runs for every variant back to back, the order alternating per
            # repetition (ABBA): a stretch of host noise then falls on both sides of a pair.
            order = self.targets() if rep % 2 == 0 else self.targets()[::-1]
            if "c1" in wanted:
                for stack in order:
                    r = self.wrk(stack, 1, seconds, harness.PLAIN)
                    add(stack.name, "c1 latency p50 (ms)", r["p50_ms"])
                    add(stack.name, "c1 latency p99 (ms)", r["p99_ms"])
                    add(stack.name, "c1 CPU per request (ms)", r["cpu_ms_per_request"])
            if "c16" in wanted:
                for stack in order:
                    r = self.wrk(stack, 16, seconds, harness.PLAIN)
                    add(stack.name, "c16 requests/s", r["rps"])
                    add(stack.name, "c16 CPU per request (ms)", r["cpu_ms_per_request"])
                    for proc, used in r["cpu_by_process_s"].items():
                        per_request = 1000 * used / r["requests"]
                        add(stack.name, f"  {proc} CPU per request (ms)", per_request)
            if "ttft" in wanted:
                for stack in order:
                    r = self.loadgen(stack, spec, timeout=seconds + 60)
                    add(stack.name, "stream TTFT p50 (ms)", r["ttft_ms"].get("p50"))
            if "paced" in wanted:
                paced = {
                    **spec,
                    "concurrency": 4,
                    "stagger": 0.64,  # as the benchmark's paced scenario
                    "duration": max(seconds, 2.0),
                    "body": harness.PACED10,
                }
                for stack in order:
                    r = self.loadgen(stack, paced, timeout=seconds + 60)
                    add(stack.name, "paced TTFT p50 (ms)", r["ttft_ms"].get("p50"))
            if "chunks" in wanted:
                for stack in order:
                    self._chunks(stack, spec, seconds, add)
            self.log(f"repetition {rep + 1}/{reps} done (load average {os.getloadavg()[0]:.1f})")
        return out

    def _chunks(
        self,
        stack: Stack,
        spec: dict[str, Any],
        seconds: float,
        add: Callable[[str, str, float | None], None],
    ) -> None:
        """Bursts at c=16 against `stack`: CPU per relayed chunk, per process and in all."""
        name = stack.name
        with self.cpu().measure() as cpu:
            r = self.loadgen(stack, {**spec, "concurrency": 16}, timeout=seconds + 90)
        chunks = r["chunks"] or 1
        total = 0.0
        for key, used in cpu["procs"].items():
            owner, proc = key.split("/", 1)
            if owner == name:
                total += used
                add(name, f"  {proc} CPU per chunk (µs)", 1e6 * used / chunks)
        add(name, "stream CPU per chunk (µs)", 1e6 * total / chunks)
        add(name, "chunks per CPU-second", chunks / total if total else None)


def main(argv: list[str] | None = None) -> int:
    """Parse NAME=PATH variants, run, print the medians and their ratio to the first variant
    (the median of the per-repetition ratios)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=PATH (PATH holds libs/ and services/)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE",
        help="start variant NAME's processes with KEY=VALUE in their environment (repeatable); "
        "e.g. `old:GODEBUG=schedtrace=0` runs nats-server as before the eighth round",
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    parser.add_argument("--out", help="JSON file for every repetition's figures")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=MEASUREMENTS,
        help="measure only these: c1 latency, c16 throughput, burst TTFT, paced TTFT, chunks",
    )
    args = parser.parse_args(argv)
    variants: dict[str, Path] = {}
    for item in args.variants:
        name, _, path = item.partition("=")
        if not name or not path:
            parser.error(f"expected NAME=PATH, got {item!r}")
        variants[name] = Path(path).resolve()
    envs: dict[str, dict[str, str]] = {}
    for item in args.env:
        name, _, setting = item.partition(":")
        key, eq, value = setting.partition("=")
        if name not in variants or not key or not eq:
            parser.error(f"expected --env NAME:KEY=VALUE, NAME one of the variants; got {item!r}")
        envs.setdefault(name, {})[key] = value
    harness.ensure_wrk()
    bench_args = harness.parse_args(["--quick", "--targets", "direct"])
    compare = Compare(bench_args, variants, envs)
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, {int(c) for c in compare.load_cores.split(",")})
    with raised_fd_limit():
        try:
            compare.start_variants()
            figures = compare.measure(args.reps, args.seconds, set(args.only or ()))
        finally:
            compare.stop()
    first = compare.order[0]
    keys = list(figures[first])
    width = max(len(k) for k in keys)
    title = f"median of {args.reps}"
    print(f"{title:<{width}}  " + "  ".join(f"{n:>16}" for n in compare.order))
    for key in keys:
        base = figures[first].get(key) or []
        cells = []
        for name in compare.order:
            values = figures[name].get(key)
            if not values:
                cells.append(f"{'–':>16}")
                continue
            value = statistics.median(values)
            # The median of the per-repetition ratios: each pair ran back to back, so a slow
            # drift of the machine cancels out of it.
            pairs = [v / b for v, b in zip(values, base, strict=False) if b]
            ratio = f" ({statistics.median(pairs):.2f}×)" if pairs and name != first else ""
            cells.append(f"{value:>8.2f}{ratio:>8}")
        print(f"{key:<{width}}  " + "  ".join(cells))
    if args.out:
        Path(args.out).write_text(
            json.dumps({"variants": {k: str(v) for k, v in variants.items()}, "figures": figures})
        )
    print(f"logs: {compare.workdir.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
