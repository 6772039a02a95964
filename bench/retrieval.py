"""Retrieval benchmark: `python bench/retrieval.py [--quick] [--chunks N] [--queries Q] [--out F]`.

1. Vector search at `--chunks` synthetic chunks (see bench/retrieval_data.py): p50/p99 latency and
   recall@10 of `Store.vector_search` across ef_search, the `Searcher` path, filtered searches,
   and the query plans (bench/retrieval_search.py).
2. Ingestion end to end through the gateway with the local embedding model, and where its time
   goes: parse + chunk, embedding, database upsert (bench/retrieval_ingest.py).

Everything runs on this machine under bench/.work/retrieval-<stamp>/ (PostgreSQL from `pgserver`
on a Unix socket, NATS and the services on 127.0.0.1), is stopped by PID at the end, and the
folder is removed unless `--keep` (or the run failed). Results go to
bench/results/retrieval-<stamp>.json; `--docs docs/benchmarks.md` writes (or replaces) its
"Retrieval" section.
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
from collections.abc import Awaitable, Callable
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
Saver = Callable[[dict[str, Any]], None]


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


async def _part(
    results: dict[str, Any], name: str, work: Awaitable[None], timeout: float, save: Saver
) -> None:
    """Run one part within `timeout`; a failure is recorded (with what the part had measured
    so far, which it keeps in `results[name]`) instead of losing the other part's figures."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(work, timeout=timeout)
    except Exception as exc:  # recorded, reported, and the exit status says so
        what = f"timed out after {timeout:.0f} s" if isinstance(exc, TimeoutError) else repr(exc)
        results[name]["error"] = what
        print(f"{name}: {what}", file=sys.stderr)
    results[name]["wall_s"] = round(time.monotonic() - started, 1)
    save(results)


async def run(args: argparse.Namespace, workdir: Path, save: Saver) -> dict[str, Any]:
    """Both parts, with PostgreSQL started once; returns the results document (also saved
    after each part)."""
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
            "ingest_repeats": args.ingest_repeats,
        },
        "load_average_start": retrieval_search.load_average(),
        "uptime_start": uptime(),
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
                results["search"] = {}
                await _part(
                    results,
                    "search",
                    _search(args, pg.uri, Store(pool), results["search"]),
                    args.search_timeout,
                    save,
                )
        finally:
            await pool.close()
        if not args.skip_ingest:
            results["ingest"] = {}
            await _part(
                results,
                "ingest",
                retrieval_ingest.run(
                    pg.uri,
                    workdir,
                    results["ingest"],
                    n_documents=args.documents,
                    repeats=args.ingest_repeats,
                    per_document=not args.quick,
                    budget_s=args.ingest_timeout * 0.7,
                ),
                args.ingest_timeout,
                save,
            )
    finally:
        if pg is not None:
            pg.stop()
    results["load_average_end"] = retrieval_search.load_average()
    results["uptime_end"] = uptime()
    return results


async def _search(args: argparse.Namespace, uri: str, store: Store, out: dict[str, Any]) -> None:
    started = time.monotonic()
    mix = mixture(args.chunks, args.queries)
    out["data"] = {
        "kind": "synthetic Gaussian mixture (not model embeddings)",
        "centres": 1000,
        "subspace_rank": 16,
        "chunks": args.chunks,
        "queries": args.queries,
        "generate_s": round(time.monotonic() - started, 2),
    }
    tail = max(1, min(args.chunks // 50, 2000))  # 2% (at most 2,000) inserted with the index
    loaded = await retrieval_search.load(
        uri, store, mix, f"bench-{args.chunks}", chunks_per_doc=10, tail=tail, seed=3
    )
    out["load"] = loaded.report
    await retrieval_search.measure(uri, store, loaded, mix, args.ef, args.repeats, out)


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
    parser.add_argument("--search-timeout", type=float, help="bound of the search part (s)")
    parser.add_argument("--ingest-timeout", type=float, help="bound of the ingestion part (s)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--skip-search", action="store_true", help="ingestion only")
    parser.add_argument("--skip-ingest", action="store_true", help="search only")
    args = parser.parse_args(argv)
    small = args.quick
    args.chunks = args.chunks or (5_000 if small else 100_000)
    args.queries = args.queries or (30 if small else 200)
    args.documents = args.documents or (8 if small else 100)
    args.repeats = args.repeats or (1 if small else 3)
    args.ingest_repeats = args.ingest_repeats or (1 if small else 3)
    # Bounds of each part (typical: a third of them); the whole run stays under 15 minutes.
    args.search_timeout = args.search_timeout or (70.0 if small else 540.0)
    args.ingest_timeout = args.ingest_timeout or (45.0 if small else 300.0)
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

    def save(results: dict[str, Any]) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    ok = False
    try:
        results = asyncio.run(run(args, workdir, save))
        results["wall_s"] = round(time.monotonic() - started, 1)
        save(results)
        text = markdown(results, out.relative_to(ROOT) if out.is_relative_to(ROOT) else out)
        print(text)
        failed = [part for part in ("search", "ingest") if "error" in results.get(part, {})]
        if args.docs is not None and not failed:
            update_docs(args.docs, text)
            print(f"updated {args.docs}")
        print(f"results: {out}")
        ok = not failed
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"work folder kept: {workdir}", file=sys.stderr)
    return 0 if ok else 1


def uptime() -> str:
    """`uptime`'s line, for the record."""
    try:
        return subprocess.run(
            ["uptime"], check=False, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


if __name__ == "__main__":
    sys.exit(main())
