"""An async HTTP/1.1 load generator for what `wrk` cannot measure: fixed-rate (open-loop) load and
streamed answers (time to first token, inter-chunk gaps, one-way chunk latency, open streams).

Run as its own process: `python bench/loadgen.py '<spec as JSON>'`; it prints one JSON object.
Raw asyncio protocol + httptools' response parser on uvloop, keep-alive connections, no
framework, so that the generator costs far less per request than any proxy it measures.

Modes (`spec["mode"]`):

- `rate`: open loop. Request `i` is due at `start + i / rate`; its latency is measured from when it
  was due (so a proxy that falls behind is charged for the queueing it causes, no coordinated
  omission). `send_lag` says how late the generator itself sent requests.
- `closed`: `concurrency` clients on connections opened before the clock starts, each sending
  requests back to back for `duration` seconds (or `count` requests in all; with
  `progress_every`, a `PROGRESS <n> <s>` line goes to stderr each time `n` requests were issued;
  with `stagger` seconds, client i starts `stagger * i / n` late).
  Streamed requests are measured per chunk: time to first token, gaps between content chunks and
  each chunk's one-way latency (the mock writes its CLOCK_MONOTONIC time into each chunk).
- `open`: `count` streams opened at once (within `ramp` seconds), each must finish with
  `data: [DONE]` and `chunks` content chunks; reports errors and the peak of streams open at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
import uvloop

_TOKEN = re.compile(rb"tok\d+@(\d+)")


def percentiles(
    values: list[float], points: tuple[float, ...] = (50, 90, 99, 99.9)
) -> dict[str, float]:
    """Nearest-rank percentiles (and min, max, mean, count) of `values`."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    out: dict[str, float] = {"count": len(ordered), "min": ordered[0], "max": ordered[-1]}
    out["mean"] = sum(ordered) / len(ordered)
    for p in points:
        rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
        out[f"p{p:g}"] = ordered[rank]
    return out


class RequestFailed(Exception):
    """A request ended without a complete, successful answer."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class StreamTrace:
    """What one streamed answer looked like from the client."""

    sent_ns: int
    headers_ns: int = 0
    chunk_recv: list[int] = field(default_factory=list)
    chunk_emit: list[int] = field(default_factory=list)
    done: bool = False
    error: bool = False


class Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.trace: StreamTrace | None = None
        self.status = 0
        self.now = 0
        self.closed = False
        self._buffer = b""

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(RequestFailed("connection_lost"))

    def data_received(self, data: bytes) -> None:
        self.now = time.monotonic_ns()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(RequestFailed("bad_response"))

    # httptools callbacks ----------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.trace is not None:
            self.trace.headers_ns = self.now

    def on_body(self, body: bytes) -> None:
        trace = self.trace
        if trace is None:
            return
        self._buffer += body
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return
            event, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            if event.startswith(b"data: [DONE]"):
                trace.done = True
            elif (m := _TOKEN.search(event)) is not None:
                trace.chunk_recv.append(self.now)
                trace.chunk_emit.append(int(m.group(1)))
            elif b'"error"' in event:
                trace.error = True

    def on_message_complete(self) -> None:
        self._buffer = b""
        if not self.parser.should_keep_alive():
            self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.status)

    # requests ---------------------------------------------------------------------------------
    async def request(self, payload: bytes, trace: StreamTrace | None = None) -> int:
        """Send `payload` (a whole HTTP request) and wait for the whole answer; the status."""
        if self.closed or self.transport is None:
            raise RequestFailed("connection_closed")
        self.trace = trace
        self.status = 0
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        try:
            return await self.waiter
        finally:
            self.waiter = None
            self.trace = None

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Target:
    """Where requests go and what they are."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.host: str = spec.get("host", "127.0.0.1")
        self.port: int = int(spec["port"])
        path: str = spec.get("path", "/v1/chat/completions")
        body = json.dumps(spec["body"]).encode()
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        if key := spec.get("key"):
            head.append(f"Authorization: Bearer {key}")
        self.payload = ("\r\n".join(head) + "\r\n\r\n").encode() + body

    async def connect(self) -> Conn:
        """A new connection."""
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(Conn, self.host, self.port)
        return proto


class Pool:
    """Keep-alive connections, opened on demand up to `limit`."""

    def __init__(self, target: Target, limit: int) -> None:
        self._target = target
        self._limit = limit
        self._idle: list[Conn] = []
        self._opened = 0
        self._waiters: list[asyncio.Future[Conn]] = []
        self.peak = 0

    async def get(self) -> Conn:
        """An idle connection, a new one, or the next one released."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._opened -= 1
        if self._opened < self._limit:
            self._opened += 1
            self.peak = max(self.peak, self._opened)
            try:
                return await self._target.connect()
            except OSError:
                self._opened -= 1
                raise RequestFailed("connect") from None
        waiter: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    async def fill(self) -> None:
        """Open every connection now (before the clock starts, as wrk does): the requests are
        then measured on established keep-alive connections, not with a TCP handshake and a
        proxy's per-connection set-up in their first request's time."""
        missing = self._limit - self._opened
        self._opened += missing
        conns = await asyncio.gather(
            *(self._target.connect() for _ in range(missing)), return_exceptions=True
        )
        for conn in conns:
            if isinstance(conn, Conn):
                self._idle.append(conn)
            elif isinstance(conn, OSError):
                self._opened -= 1  # that slot opens on demand later, like any other
            else:
                raise conn
        self.peak = max(self.peak, self._opened)

    def put(self, conn: Conn) -> None:
        """Give a connection back (a closed one frees its slot)."""
        if conn.closed:
            self._opened -= 1
            if self._waiters:
                waiter = self._waiters.pop(0)
                self._opened += 1

                async def reopen() -> None:
                    try:
                        waiter.set_result(await self._target.connect())
                    except OSError:
                        self._opened -= 1
                        waiter.set_exception(RequestFailed("connect"))

                asyncio.get_running_loop().create_task(reopen())
            return
        if self._waiters:
            self._waiters.pop(0).set_result(conn)
            return
        self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()


async def one(pool: Pool, target: Target, timeout: float, trace: StreamTrace | None = None) -> None:
    """One request on a pooled connection; raises `RequestFailed` unless it got a 200."""
    conn = await pool.get()
    try:
        async with asyncio.timeout(timeout):
            status = await conn.request(target.payload, trace)
    except TimeoutError:
        conn.close()
        raise RequestFailed("timeout") from None
    finally:
        pool.put(conn)
    if status != 200:
        raise RequestFailed(f"http_{status}")


async def run_rate(spec: dict[str, Any]) -> dict[str, Any]:
    """Open-loop load at `rate` requests/s for `duration` s."""
    target = Target(spec)
    rate = float(spec["rate"])
    duration = float(spec["duration"])
    timeout = float(spec.get("timeout", 10))
    pool = Pool(target, int(spec.get("max_conns", 512)))
    total = max(1, int(rate * duration))
    latencies: list[float] = []
    lags: list[float] = []
    errors: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()

    async def fire(due: int) -> None:
        lags.append((time.monotonic_ns() - due) / 1e6)
        try:
            await one(pool, target, timeout)
        except RequestFailed as exc:
            errors[exc.kind] += 1
            return
        latencies.append((time.monotonic_ns() - due) / 1e6)

    loop = asyncio.get_running_loop()
    start = time.monotonic_ns() + 20_000_000
    interval = 1e9 / rate
    sent = 0
    while sent < total:
        now = time.monotonic_ns()
        due_count = min(total, int((now - start) / interval) + 1) if now >= start else 0
        while sent < due_count:
            task = loop.create_task(fire(start + int(sent * interval)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        if sent < total:
            wait = (start + sent * interval - time.monotonic_ns()) / 1e9
            await asyncio.sleep(max(0.0, wait))
    sent_end = time.monotonic_ns()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 1)
    end = time.monotonic_ns()
    pool.close()
    return {
        "mode": "rate",
        "rate": rate,
        "duration_s": duration,
        "sent": sent,
        "ok": len(latencies),
        "errors": dict(errors),
        "achieved_rps": len(latencies) / ((end - start) / 1e9),
        "send_span_s": (sent_end - start) / 1e9,
        "latency_ms": percentiles(latencies),
        "send_lag_ms": percentiles(lags),
        "connections": pool.peak,
    }


def _stream_stats(traces: list[StreamTrace]) -> dict[str, Any]:
    ttft: list[float] = []
    gaps: list[float] = []
    oneway: list[float] = []
    chunks = 0
    for t in traces:
        if not t.chunk_recv:
            continue
        ttft.append((t.chunk_recv[0] - t.sent_ns) / 1e6)
        chunks += len(t.chunk_recv)
        gaps.extend((b - a) / 1e6 for a, b in zip(t.chunk_recv, t.chunk_recv[1:], strict=False))
        oneway.extend((r - e) / 1e6 for r, e in zip(t.chunk_recv, t.chunk_emit, strict=True))
    return {
        "chunks": chunks,
        "ttft_ms": percentiles(ttft),
        "gap_ms": percentiles(gaps),
        "chunk_latency_ms": percentiles(oneway),
    }


async def _streamed(
    pool: Pool, target: Target, timeout: float, expect: int, errors: Counter[str]
) -> StreamTrace:
    trace = StreamTrace(sent_ns=time.monotonic_ns())
    try:
        await one(pool, target, timeout, trace)
    except RequestFailed as exc:
        errors[exc.kind] += 1
        trace.error = True
        return trace
    if trace.error:
        errors["error_event"] += 1
    elif not trace.done:
        errors["no_done"] += 1
        trace.error = True
    elif expect and len(trace.chunk_recv) != expect:
        errors["chunk_count"] += 1
        trace.error = True
    return trace


async def run_closed(spec: dict[str, Any]) -> dict[str, Any]:
    """`concurrency` clients sending back to back for `duration` s or `count` requests in all.

    Streamed bodies (`"stream": true`) are checked for completeness and measured per chunk.
    """
    target = Target(spec)
    streamed = bool(spec["body"].get("stream"))
    concurrency = int(spec.get("concurrency", 1))
    duration = float(spec.get("duration", 0))
    count = int(spec.get("count", 0))
    timeout = float(spec.get("timeout", 30))
    expect = int(spec.get("chunks", 0))
    pool = Pool(target, concurrency)
    await pool.fill()
    errors: Counter[str] = Counter()
    traces: list[StreamTrace] = []
    latencies: list[float] = []
    start = time.monotonic()
    stop_at = start + duration if duration else float("inf")
    issued = 0

    progress = int(spec.get("progress_every", 0))
    stagger = float(spec.get("stagger", 0))

    async def client(index: int) -> None:
        nonlocal issued
        if stagger:
            await asyncio.sleep(stagger * index / concurrency)
        while time.monotonic() < stop_at and (not count or issued < count):
            issued += 1
            if progress and issued % progress == 0:
                print(f"PROGRESS {issued} {time.monotonic() - start:.3f}", file=sys.stderr)
                sys.stderr.flush()
            if streamed:
                traces.append(await _streamed(pool, target, timeout, expect, errors))
                continue
            began = time.monotonic_ns()
            try:
                await one(pool, target, timeout)
            except RequestFailed as exc:
                errors[exc.kind] += 1
                continue
            latencies.append((time.monotonic_ns() - began) / 1e6)

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.monotonic() - start
    pool.close()
    result: dict[str, Any] = {
        "mode": "closed",
        "concurrency": concurrency,
        "elapsed_s": elapsed,
        "requests": issued,
        "errors": dict(errors),
    }
    if not streamed:
        result.update(
            ok=len(latencies), rps=len(latencies) / elapsed, latency_ms=percentiles(latencies)
        )
        return result
    good = [t for t in traces if not t.error]
    stats = _stream_stats(good)
    result.update(
        ok=len(good),
        rps=len(good) / elapsed,
        chunks_per_s=stats["chunks"] / elapsed,
        **stats,
    )
    return result


async def run_open(spec: dict[str, Any]) -> dict[str, Any]:
    """`count` streams open at once; every one must finish complete."""
    target = Target(spec)
    count = int(spec["count"])
    ramp = float(spec.get("ramp", 0.5))
    timeout = float(spec.get("timeout", 120))
    expect = int(spec.get("chunks", 0))
    errors: Counter[str] = Counter()
    open_now = 0
    peak = 0

    async def stream(i: int) -> StreamTrace:
        nonlocal open_now, peak
        await asyncio.sleep(ramp * i / count)
        pool = Pool(target, 1)  # one connection per stream
        open_now += 1
        peak = max(peak, open_now)
        try:
            return await _streamed(pool, target, timeout, expect, errors)
        finally:
            open_now -= 1
            pool.close()

    start = time.monotonic()
    traces = await asyncio.gather(*(stream(i) for i in range(count)))
    elapsed = time.monotonic() - start
    good = [t for t in traces if not t.error]
    durations = [(t.chunk_recv[-1] - t.sent_ns) / 1e6 for t in good if t.chunk_recv]
    return {
        "mode": "open",
        "count": count,
        "elapsed_s": elapsed,
        "ok": len(good),
        "errors": dict(errors),
        "peak_open": peak,
        "stream_ms": percentiles(durations),
        **_stream_stats(good),
    }


MODES = {"rate": run_rate, "closed": run_closed, "open": run_open}


def main() -> None:
    """`python bench/loadgen.py '<spec JSON>'`: run the spec, print the result as JSON."""
    spec = json.loads(sys.argv[1])
    result = uvloop.run(MODES[spec["mode"]](spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
