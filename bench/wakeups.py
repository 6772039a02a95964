"""What a wake-up costs on this machine, without Switchyard: a diagnostic for reading the figures
of `make bench` (see docs/benchmarks.md, eighth round). Run `.venv/bin/python bench/wakeups.py`;
it takes about 20 seconds and prints one line per measurement.

1. Ping-pong over a socket pair between two threads: the round trip and the `send()` that wakes
   the peer, both on one core and across the two, back to back and with the sender idle for 2 ms
   between rounds (so its core halts, as a proxy's core does between requests at low load).
2. A trivial uvloop echo server pinned to core 0, fed from core 1 (one 200-byte message at a time,
   as a proxy is fed at concurrency 1): the server's CPU time per wake-up (from
   /proc/<pid>/schedstat), at gaps of 0, 1 and 10 ms.
3. The same Python work (a chat request validated with pydantic and written with orjson, as a
   proxy does for each request) timed on core 0 after a pause of 0.1 to 30 ms, the pause slept
   or busy-waited: with the core kept busy nothing else of this machine runs there, so what the
   work costs beyond its back-to-back time is the caches the host let go cold meanwhile.

Needs two cores (it pins threads and processes with `sched_setaffinity`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

ROUNDS = 1500


def _p50(values: list[int]) -> float:
    return sorted(values)[len(values) // 2] / 1000


def ping_pong(peer_core: int, my_core: int, gap_s: float) -> str:
    """Round trip and wake-up `send()` between two threads on the given cores."""
    mine, theirs = socket.socketpair()

    def peer() -> None:
        os.sched_setaffinity(0, {peer_core})
        while (data := theirs.recv(100)) != b"q":
            theirs.send(data)

    thread = threading.Thread(target=peer)
    thread.start()
    os.sched_setaffinity(0, {my_core})
    time.sleep(0.05)
    sends, trips = [], []
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        mine.send(b"x")
        t1 = time.perf_counter_ns()
        mine.recv(100)
        sends.append(t1 - t0)
        trips.append(time.perf_counter_ns() - t0)
        if gap_s:
            time.sleep(gap_s)
    mine.send(b"q")
    thread.join()
    mine.close()
    theirs.close()
    where = "one core" if peer_core == my_core else "two cores"
    return (
        f"ping-pong, {where}, sender idle {gap_s * 1000:g} ms between rounds: "
        f"round trip p50 {_p50(trips):.1f} us, waking send() p50 {_p50(sends):.1f} us"
    )


def _cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


def serve_echo(port: int) -> None:
    """The echo server (child process): pinned to core 0; `?` answers with its CPU time."""
    import uvloop

    os.sched_setaffinity(0, {0})

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            reply = str(_cpu_ns(os.getpid())).encode() if data == b"?" else data
            self.transport.write(reply)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port)
        async with server:
            await asyncio.sleep(60)

    uvloop.run(main())


def echo_costs() -> list[str]:
    """The echo server's CPU per wake-up at several gaps between messages."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    lines = []
    try:
        os.sched_setaffinity(0, {1})
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def server_cpu() -> int:
            conn.sendall(b"?")
            return int(conn.recv(100))

        for gap_s in (0.0, 0.001, 0.01):
            count = 300
            before = server_cpu()
            for _ in range(count):
                conn.sendall(b"x" * 200)
                conn.recv(1000)
                if gap_s:
                    time.sleep(gap_s)
            per_wake = (server_cpu() - before) / count / 1000
            lines.append(
                f"uvloop echo on core 0, fed from core 1 every {gap_s * 1000:g} ms: "
                f"server CPU {per_wake:.1f} us per wake-up"
            )
        conn.close()
    finally:
        server.terminate()
        server.wait(10)
    return lines


def cold_work() -> list[str]:
    """The time of one piece of Python work after a pause, slept or busy-waited (core 0)."""
    import orjson

    from switchyard.contracts import ChatCompletionRequest

    os.sched_setaffinity(0, {0})
    body = orjson.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Say hello."}]}
    )

    def work() -> None:
        request = ChatCompletionRequest.model_validate_json(body)
        for _ in range(5):
            orjson.dumps(request.model_dump(exclude_none=True))

    for _ in range(200):
        work()
    lines = []
    for gap_s in (0.0, 0.0001, 0.001, 0.003, 0.01, 0.03):
        medians = []
        for busy in (False, True):
            times = []
            for _ in range(150):
                if not gap_s:
                    pass  # back to back
                elif busy:
                    until = time.perf_counter() + gap_s
                    while time.perf_counter() < until:
                        pass
                else:
                    time.sleep(gap_s)
                t0 = time.perf_counter_ns()
                work()
                times.append(time.perf_counter_ns() - t0)
            medians.append(_p50(times))
        if not gap_s:
            lines.append(f"python work on core 0, back to back: p50 {medians[0]:.0f} us")
            continue
        lines.append(
            f"python work on core 0 after a {gap_s * 1000:g} ms pause: p50 {medians[0]:.0f} us "
            f"slept, {medians[1]:.0f} us busy-waited"
        )
    return lines


def main() -> None:
    """Print every measurement."""
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve_echo(int(sys.argv[2]))
        return
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two cores")
    for gap_s in (0.0, 0.002):
        for my_core in (0, 1):
            print(ping_pong(0, my_core, gap_s), flush=True)
    for line in echo_costs():
        print(line, flush=True)
    for line in cold_work():
        print(line, flush=True)


if __name__ == "__main__":
    main()
