"""Retrieval benchmark: `python bench/retrieval.py [--quick] [--chunks N] [--queries Q] [--out F]`.

1. Vector search at `--chunks` synthetic chunks (see bench/retrieval_data.py): p50/p99 latency and
   recall@10 of `Store.vector_search` across ef_search, the `Searcher` path, filtered searches,
   and the query plans (bench/retrieval_search.py).
2. Ingestion end to end through the gateway with the local embedding model, and where its time
   goes: parse + chunk, embedding, database upsert (bench/retrieval_ingest.py).

Everything runs on this machine under bench/.work/retrieval-<stamp>/ (PostgreSQL from `pgserver`
on a Unix socket, NATS and the services on 127.0.0.1), is stopped by PID at the end, and the
folder is removed unless `--keep` (or the run failed). Results: bench/results/retrieval-<stamp>.json;
`--docs docs/benchmarks.md` writes (or replaces) its "Retrieval" section.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import retrieval_ingest, retrieval_search
from bench.retrieval_data import mixture
from bench.retrieval_report import markdown, update_docs
from switchyard.retrieval.migrate import migrate
from switchyard.retrieval.store import Store, create_pool
from switchyard.runtime.embedded import PostgresServer, start_postgres

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
EFS = [10, 20, 40, 80, 160]


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory, OS and Python."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _versions_of_packages() -> dict[str, str]:
    from importlib.metadata import version

    found = {}
    for name in ("asyncpg", "numpy", "pgserver", "torch", "sentence-transformers", "nats-py"):
        try:
            found[name] = version(name)
        except Exception:
            found[name] = "absent"
    return found


def _sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)  # unwinds through every `finally`: everything started gets stopped


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Both parts, with PostgreSQL started once; returns the results document."""
    results: dict[str, Any] = {
        "benchmark": "retrieval",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "parameters": {
            "chunks": args.chunks,
            "queries": args.queries,
            "repeats": args.repeats,
            "ef_search": args.ef,
            "top_k": retrieval_search.TOP_K,
            "documents": args.documents,
        },
        "load_average_start": retrieval_search.load_average(),
    }
    pg: PostgresServer | None = None
    try:
        started = time.monotonic()
        pg = start_postgres(workdir / "pg")
        results["postgres_start_s"] = round(time.monotonic() - started, 2)
        pool = await create_pool(pg.uri, 4)
        try:
            await migrate(pool)
            results["versions"] = {
                "postgresql": await pool.fetchval("SHOW server_version"),
                "pgvector": await pool.fetchval(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                ),
                **_versions_of_packages(),
            }
            if not args.skip_search:
                results["search"] = await asyncio.wait_for(
                    _search(args, pg.uri, Store(pool)), timeout=args.part_timeout
                )
        finally:
            await pool.close()
        if not args.skip_ingest:
            results["ingest"] = await asyncio.wait_for(
                retrieval_ingest.run(
                    pg.uri, workdir, args.documents, args.ingest_repeats, args.quick
                ),
                timeout=args.part_timeout,
            )
    finally:
        if pg is not None:
            pg.stop()
    results["load_average_end"] = retrieval_search.load_average()
    return results


async def _search(args: argparse.Namespace, uri: str, store: Store) -> dict[str, Any]:
    started = time.monotonic()
    mix = mixture(args.chunks, args.queries)
    generated = time.monotonic() - started
    tail = max(1, min(args.chunks // 50, 2000))  # 2% (at most 2,000) inserted with the index
    loaded = await retrieval_search.load(
        uri, store, mix, f"bench-{args.chunks}", chunks_per_doc=10, tail=tail, seed=3
    )
    measured = await retrieval_search.measure(uri, store, loaded, mix, args.ef, args.repeats)
    return {
        "data": {
            "kind": "synthetic Gaussian mixture (not model embeddings)",
            "centres": 1000,
            "subspace_rank": 16,
            "chunks": args.chunks,
            "queries": args.queries,
            "generate_s": round(generated, 2),
        },
        "load": loaded.report,
        **measured,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, help="chunks to search (default 100000)")
    parser.add_argument("--queries", type=int, help="held-out query vectors (default 200)")
    parser.add_argument("--documents", type=int, help="documents to ingest (default 200)")
    parser.add_argument("--repeats", type=int, help="rounds of each search measurement (3)")
    parser.add_argument("--ingest-repeats", type=int, help="runs of each ingestion phase (3)")
    parser.add_argument("--ef", type=int, nargs="+", default=EFS, help="ef_search values")
    parser.add_argument("--quick", action="store_true", help="small variant, under 2 minutes")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/...)")
    parser.add_argument("--docs", type=Path, help="write the Retrieval section of this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--skip-search", action="store_true", help="ingestion only")
    parser.add_argument("--skip-ingest", action="store_true", help="search only")
    args = parser.parse_args(argv)
    small = args.quick
    args.chunks = args.chunks or (10_000 if small else 100_000)
    args.queries = args.queries or (50 if small else 200)
    args.documents = args.documents or (20 if small else 200)
    args.repeats = args.repeats or (2 if small else 3)
    args.ingest_repeats = args.ingest_repeats or (1 if small else 3)
    args.part_timeout = 110.0 if small else 600.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Run, write the JSON (and the docs section when asked), print the tables."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S") + ("-quick" if args.quick else "")
    workdir = BENCH / ".work" / f"retrieval-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    out = args.out or BENCH / "results" / f"retrieval-{stamp}.json"
    started = time.monotonic()
    ok = False
    try:
        results = asyncio.run(run(args, workdir))
        results["wall_s"] = round(time.monotonic() - started, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        text = markdown(results, out.relative_to(ROOT) if out.is_relative_to(ROOT) else out)
        print(text)
        if args.docs is not None:
            update_docs(args.docs, text)
            print(f"updated {args.docs}")
        print(f"results: {out}")
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"work folder kept: {workdir}", file=sys.stderr)
    return 0


def uptime() -> str:
    """`uptime`'s line, for the record."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


if __name__ == "__main__":
    sys.exit(main())
