"""py-spy profiles of Switchyard's processes under load, and a summary of where the time goes.

`py-spy record --native --gil --format speedscope` writes one speedscope file per process
(open it at speedscope.app); `summarise` reads it back and adds up, over every sampled thread:
the time per thread, the *self* time per library (the deepest frame that belongs to a known
library; CPython interpreter frames are skipped so their time goes to the Python code running),
the top functions by self time and by inclusive time.

`--gil` keeps only the samples of a thread that holds the GIL: on a CPU-bound asyncio service that
is its CPU work; without it, threads waiting for the GIL (FastAPI's threadpool workers) look busy.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

# (label, substrings of a frame's file path), first match wins; order matters.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pydantic (validation/serialisation)", ("pydantic",)),
    ("fastapi (routing, dependencies)", ("/fastapi/",)),
    ("starlette (requests, responses, middleware)", ("/starlette/",)),
    ("uvicorn + httptools (HTTP server)", ("/uvicorn/", "httptools")),
    ("anyio / threadpool (sync dependencies)", ("/anyio/", "concurrent/futures", "threading.py")),
    ("opentelemetry (tracing)", ("/opentelemetry/",)),
    ("logging (stdlib + JSON formatter)", ("logging/", "runtime/logging.py", "/json/")),
    ("nats-py (client, inbox, parser)", ("/nats/",)),
    ("faststream (subscriber middleware)", ("/faststream/", "fast_depends")),
    ("httpx / httpcore / h11 (upstream HTTP)", ("/httpx/", "/httpcore/", "/h11/")),
    ("prometheus_client (metrics)", ("prometheus_client",)),
    ("orjson", ("orjson",)),
    ("uuid / hashlib / secrets", ("uuid.py", "hashlib", "secrets.py", "random.py")),
    ("switchyard code", ("/switchyard/",)),
    ("asyncio / uvloop (event loop, socket I/O)", ("asyncio/", "uvloop", "/uv/", "loop.c")),
    ("contextlib / typing / enum / misc stdlib", ("contextlib", "typing", "enum.py", "<frozen")),
)
# Native frames of the interpreter itself: their time belongs to the Python frame above them.
INTERPRETER = ("Python-3", "python3.", "libpython", "/Objects/", "/Python/", "/Include/", "libc.so")


def category(file: str) -> str | None:
    """The library a frame's file belongs to; None for interpreter internals."""
    for label, needles in CATEGORIES:
        if any(n in file for n in needles):
            return label
    if any(n in file for n in INTERPRETER) or file.endswith((".c", ".h")) or ".so" in file:
        return None
    return "other"


def short(file: str) -> str:
    """A frame's file without the site-packages or repository prefix."""
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.rsplit("/", 1)[-1]


def summarise(path: Path, top: int = 25) -> dict[str, Any]:
    """Where the samples of one speedscope profile went."""
    data = json.loads(path.read_text())
    frames: list[dict[str, Any]] = data["shared"]["frames"]
    keys = [f"{f['name']} ({short(f.get('file') or '?')})" for f in frames]
    cats = [category(f.get("file") or "") for f in frames]
    is_python = [(f.get("file") or "").endswith(".py") for f in frames]
    total = 0.0
    threads: defaultdict[str, float] = defaultdict(float)
    self_cat: defaultdict[str, float] = defaultdict(float)
    self_fn: defaultdict[str, float] = defaultdict(float)
    incl_fn: defaultdict[str, float] = defaultdict(float)
    incl_cat: defaultdict[str, float] = defaultdict(float)
    for profile in data["profiles"]:
        name = str(profile.get("name", "?"))
        label = name.split('"')[1] if '"' in name else name
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            w = float(weight)
            total += w
            threads[label] += w
            leaf_cat = next((cats[i] for i in reversed(stack) if cats[i] is not None), "other")
            self_cat[leaf_cat or "other"] += w
            leaf_py = next((keys[i] for i in reversed(stack) if is_python[i]), None)
            if leaf_py is not None:
                self_fn[leaf_py] += w
            for key in {keys[i] for i in stack if is_python[i]}:
                incl_fn[key] += w
            for cat in {cats[i] for i in stack if cats[i] is not None}:
                incl_cat[cat] += w

    def share(counter: dict[str, float], n: int | None = None) -> list[dict[str, Any]]:
        ranked = sorted(counter.items(), key=lambda kv: kv[1], reverse=True)[:n]
        return [
            {"name": k, "seconds": round(v, 3), "pct": round(100 * v / total, 1) if total else 0}
            for k, v in ranked
        ]

    # Inclusive frames present in nearly every sample (the event loop, `run`) tell nothing.
    inclusive = [row for row in share(incl_fn) if row["pct"] < 90][:top]
    return {
        "file": str(path),
        "sampled_seconds": round(total, 3),
        "threads": share(threads),
        "self_by_library": share(self_cat),
        "inclusive_by_library": share(incl_cat),
        "top_self": share(self_fn, top),
        "top_inclusive": inclusive,
    }


def main() -> None:
    """`python -m bench.profiling FILE...`: print where the samples of each profile went."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    for path in args.files:
        result = summarise(path, args.top)
        print(f"== {path} ({result['sampled_seconds']} s sampled)")
        for section in ("threads", "self_by_library", "top_self", "top_inclusive"):
            print(f"-- {section}")
            for row in result[section]:
                print(f"  {row['pct']:5.1f}%  {row['name']}")


if __name__ == "__main__":
    main()
