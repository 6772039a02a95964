"""`HotPath` against a real nats-server: what arrives is what was sent (subject, reply, headers,
data, order), frames split across reads, mixed with nats-py's own subscriptions, status
messages, handler failures, a server restart, and the same calls through the public API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from tests.support.barrier import settled

from switchyard.runtime.embedded import NatsServer, free_port, start_nats
from switchyard.runtime.hotpath import Headers, HotPath

Seen = list[tuple[str, str, bytes, Headers | None]]


@pytest.fixture(params=[True, False], ids=["direct", "public-api"])
async def pair(
    request: pytest.FixtureRequest, nats_server: NatsServer
) -> AsyncIterator[tuple[HotPath, Client]]:
    """A hot path on one connection (its fast lane, or nats-py's public API) and a plain
    client on another."""
    hot_nc = await nats.connect(nats_server.url)
    other = await nats.connect(nats_server.url)
    hot = HotPath(hot_nc, direct=request.param)
    if request.param:
        assert HotPath.supported(other), "the nats-py in use lacks what the fast lane needs"
    yield hot, other
    await hot_nc.close()
    await other.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return once `condition()` holds; fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not so within {timeout} s")


async def wait_for(seen: Seen, count: int) -> None:
    await until(lambda: len(seen) >= count)


async def test_messages_arrive_whole_with_reply_and_headers(
    pair: tuple[HotPath, Client],
) -> None:
    hot, other = pair
    seen: Seen = []
    await hot.subscribe("hp.a.*", lambda *m: seen.append(m))
    await settled(hot._nc)
    await other.publish("hp.a.1", b"plain")
    await other.publish("hp.a.2", b"with reply", reply="inbox.7")
    await other.publish("hp.a.3", b"", headers={"traceparent": "00-ab-cd-01", "X-Key": "v: w"})
    await other.publish("hp.a.4", b"x" * 300_000)  # larger than one read: split across reads
    await wait_for(seen, 4)
    assert seen[0] == ("hp.a.1", "", b"plain", None)
    assert seen[1] == ("hp.a.2", "inbox.7", b"with reply", None)
    assert seen[2] == ("hp.a.3", "", b"", {"traceparent": "00-ab-cd-01", "X-Key": "v: w"})
    assert seen[3] == ("hp.a.4", "", b"x" * 300_000, None)


async def test_a_burst_keeps_its_order_beside_plain_subscriptions(
    pair: tuple[HotPath, Client],
) -> None:
    hot, other = pair
    seen: Seen = []
    plain: list[bytes] = []

    async def on_plain(msg: Msg) -> None:
        plain.append(msg.data)

    await hot.subscribe("hp.b.hot", lambda *m: seen.append(m))
    await hot._nc.subscribe("hp.b.plain", cb=on_plain)  # nats-py's own, on the same connection
    await settled(hot._nc)
    for i in range(2000):
        await other.publish("hp.b.hot" if i % 3 else "hp.b.plain", b"%d" % i)
    await wait_for(seen, 2000 - 667)
    await until(lambda: len(plain) >= 667)
    assert [m[2] for m in seen] == [b"%d" % i for i in range(2000) if i % 3]
    assert plain == [b"%d" % i for i in range(0, 2000, 3)]


async def test_hot_messages_do_not_wake_the_read_loop(pair: tuple[HotPath, Client]) -> None:
    """Once the read loop waits on an empty buffer, hot frames go to the handler straight from
    the connection's data_received: nats-py's read loop hands the parser nothing."""
    hot, other = pair
    seen: Seen = []
    await hot.subscribe("hp.w", lambda *m: seen.append(m))
    await settled(hot._nc)  # traffic through the read loop: the reader is hooked after it
    parser = hot._nc._ps
    handed: list[bytes] = []
    read_loop_parse = parser.parse

    async def counting(data: bytes = b"") -> None:
        handed.append(data)
        await read_loop_parse(data)

    parser.parse = counting  # type: ignore[method-assign]
    for i in range(20):  # one at a time: each is a read of its own
        await other.publish("hp.w", b"%d" % i, headers={"n": str(i)} if i % 2 else None)
        await wait_for(seen, i + 1)
    assert [m[2] for m in seen] == [b"%d" % i for i in range(20)]
    assert [m[3] for m in seen[1::2]] == [{"n": str(i)} for i in range(1, 20, 2)]
    if hot.direct:
        assert handed == []
    else:
        assert len(handed) >= 20  # nats-py's public API: every read through the read loop


async def test_publishes_of_one_pass_all_arrive_in_order(pair: tuple[HotPath, Client]) -> None:
    hot, other = pair
    got: list[Msg] = []

    async def on_msg(msg: Msg) -> None:
        got.append(msg)

    await other.subscribe("hp.c", cb=on_msg)
    await settled(other)
    for i in range(500):  # no await suspends here: one write at the end of the pass
        await hot.publish("hp.c", b"%d" % i, headers={"n": str(i)} if i % 2 else None)
    await until(lambda: len(got) >= 500)
    assert [m.data for m in got] == [b"%d" % i for i in range(500)]
    assert [m.headers for m in got[:3]] == [None, {"n": "1"}, None]
    assert not hot._nc._pending


async def test_request_to_nobody_gets_the_no_responders_status(
    pair: tuple[HotPath, Client],
) -> None:
    hot, _ = pair
    seen: Seen = []
    inbox = hot._nc.new_inbox()
    await hot.subscribe(f"{inbox}.*", lambda *m: seen.append(m))
    await settled(hot._nc)
    await hot.publish("hp.nobody.listens", b"{}", reply=f"{inbox}.1")
    await wait_for(seen, 1)
    subject, _, data, headers = seen[0]
    assert subject == f"{inbox}.1"
    assert data == b""
    assert headers is not None
    assert headers.get("Status") == "503"


async def test_a_failing_handler_does_not_stop_the_connection(
    pair: tuple[HotPath, Client], caplog: pytest.LogCaptureFixture
) -> None:
    hot, other = pair
    seen: Seen = []

    def handler(subject: str, reply: str, data: bytes, headers: Headers | None) -> None:
        if data == b"boom":
            raise ValueError("handler bug")
        seen.append((subject, reply, data, headers))

    await hot.subscribe("hp.d", handler)
    await settled(hot._nc)
    await other.publish("hp.d", b"boom")
    await other.publish("hp.d", b"after")
    await wait_for(seen, 1)
    assert seen[0][2] == b"after"
    assert "hot-path handler failed" in caplog.text
    assert hot._nc.is_connected


async def test_queue_groups_share_the_messages(pair: tuple[HotPath, Client]) -> None:
    hot, other = pair
    mine: Seen = []
    theirs: list[bytes] = []

    async def on_other(msg: Msg) -> None:
        theirs.append(msg.data)

    await hot.subscribe("hp.e", lambda *m: mine.append(m), queue="workers")
    await other.subscribe("hp.e", queue="workers", cb=on_other)
    await settled(hot._nc)
    await settled(other)
    for i in range(200):
        await other.publish("hp.e", b"%d" % i)
    await until(lambda: len(mine) + len(theirs) >= 200)
    assert sorted([int(m[2]) for m in mine] + [int(d) for d in theirs]) == list(range(200))


async def test_attach_is_once_per_client(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        assert HotPath.attach(nc) is HotPath.attach(nc)
        assert HotPath.attach(nc).direct
    finally:
        await nc.close()


async def test_subscriptions_and_publishes_survive_a_server_restart(tmp_path: Path) -> None:
    port = free_port()
    server = await asyncio.to_thread(start_nats, tmp_path / "a", port)
    nc = await nats.connect(f"nats://127.0.0.1:{port}", reconnect_time_wait=0.1)
    other = await nats.connect(f"nats://127.0.0.1:{port}", reconnect_time_wait=0.1)
    hot = HotPath.attach(nc)
    seen: Seen = []
    try:
        await hot.subscribe("hp.f", lambda *m: seen.append(m))
        await settled(nc)
        await other.publish("hp.f", b"before")
        await wait_for(seen, 1)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(0.3)
        await hot.publish("hp.f", b"while down")  # kept in nats-py's buffer until reconnected
        server = await asyncio.to_thread(start_nats, tmp_path / "b", port)
        await until(lambda: nc.is_connected and other.is_connected, timeout=10)
        await settled(nc)
        await settled(other)
        await other.publish("hp.f", b"after")
        await wait_for(seen, 3)
        assert {m[2] for m in seen} == {b"before", b"while down", b"after"}
    finally:
        await nc.close()
        await other.close()
        await asyncio.to_thread(server.stop)
