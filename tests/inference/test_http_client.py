"""The provider HTTP client against a real loopback server: keep-alive, chunked and
content-length bodies, incremental reads, timeouts, and connections closed at the right times."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tests.support.http_server import Server, json_answer

from switchyard.inference.providers.client import (
    Client,
    ConnectError,
    ProtocolError,
    Timeout,
)
from switchyard.runtime.embedded import free_port


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    c = Client()
    yield c
    await c.aclose()


async def test_keep_alive_reuses_one_connection(client: Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await server.read_request(reader)
            writer.write(json_answer(b'{"echo":' + body + b"}"))

    async with Server(handler) as server:
        for i in range(3):
            async with await client.stream(
                "POST", server.url, content=b"%d" % i, headers={"x-a": "b"}
            ) as response:
                assert response.status == 200
                assert response.headers["content-type"] == "application/json"
                assert await response.read() == b'{"echo":%d}' % i
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /v1/thing HTTP/1.1\r\n")
        assert b"\r\nhost: 127.0.0.1:%d\r\n" % server.port in first
        assert b"\r\nx-a: b\r\n" in first
        assert b"\r\ncontent-length: 1\r\n" in first


async def test_chunked_lines_arrive_as_they_are_sent(client: Client) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(SSE_HEAD + chunk(b"data: one\r\n\r\ndata: tw"))
        await release.wait()  # the client must see "one" before the rest exists
        writer.write(chunk(b"o\n\n") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await server.read_request(reader)  # the connection went back to the pool
        writer.write(json_answer(b"{}"))

    async with Server(handler) as server:
        seen: list[str] = []
        async with await client.stream("POST", server.url, content=b"{}") as response:
            async for line in response.lines():
                seen.append(line)
                if line == "data: one":
                    release.set()
        assert seen == ["data: one", "", "data: two", "", "data: [DONE]", ""]
        async with await client.stream("POST", server.url, content=b"{}") as response:
            assert await response.read() == b"{}"
        assert server.connections == 1


async def test_error_status_and_body_until_close(client: Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\n\r\nbusy")
        await writer.drain()
        writer.close()

    async with Server(handler) as server, await client.stream("POST", server.url) as response:
        assert response.status == 503
        assert response.headers["retry-after"] == "2"
        assert await response.read() == b"busy"


async def test_closed_idle_connection_is_not_reused(client: Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(json_answer(b"1"))  # keep-alive answer, then the server drops the socket
        await writer.drain()

    async with Server(handler) as server:
        async with await client.stream("POST", server.url) as response:
            assert await response.read() == b"1"
        await asyncio.sleep(0.05)  # let the close reach the client
        async with await client.stream("POST", server.url) as response:
            assert await response.read() == b"1"
        assert server.connections == 2


async def test_request_lost_on_a_reused_connection_is_sent_again_once(client: Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(json_answer(b"%d" % server.connections))
        if server.connections == 1:
            await server.read_request(reader)  # the second request: dropped unanswered
            writer.transport.abort()
            return
        await asyncio.sleep(1)

    async with Server(handler) as server:
        async with await client.stream("POST", server.url) as response:
            assert await response.read() == b"1"
        async with await client.stream("POST", server.url) as response:
            assert await response.read() == b"2"
        assert server.connections == 2
        assert len(server.requests) == 3


async def test_connection_cut_mid_body_is_a_protocol_error(client: Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(SSE_HEAD + chunk(b"data: partial\n\n"))
        await writer.drain()
        writer.transport.abort()

    async with Server(handler) as server:
        response = await client.stream("POST", server.url)
        lines: list[str] = []

        async def read_all() -> None:
            async for line in response.lines():
                lines.append(line)

        with pytest.raises(ProtocolError):
            await read_all()
        response.release()
        assert lines == ["data: partial", ""]


async def test_read_timeout_and_release_closes_the_upstream(client: Client) -> None:
    gone = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(SSE_HEAD + chunk(b"data: first\n\n"))
        await reader.read()  # returns when the client closes the connection
        gone.set()

    async with Server(handler) as server:
        response = await client.stream("POST", server.url, read_timeout=0.2)
        lines = response.lines()
        assert await anext(lines) == "data: first"
        assert await anext(lines) == ""
        started = asyncio.get_running_loop().time()
        with pytest.raises(Timeout):
            await anext(lines)
        assert 0.15 < asyncio.get_running_loop().time() - started < 2
        response.release()  # unfinished: the connection closes, the upstream sees it
        await asyncio.wait_for(gone.wait(), 5)


async def test_headers_timeout(client: Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await asyncio.sleep(5)

    async with Server(handler) as server:
        with pytest.raises(Timeout):
            await client.stream("POST", server.url, read_timeout=0.2)


async def test_linger_returns_the_connection_after_the_terminator(client: Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(SSE_HEAD + chunk(b"data: [DONE]\n\n"))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"0\r\n\r\n")  # the terminator comes after the caller has finished
        await server.read_request(reader)
        writer.write(json_answer(b"2"))

    async with Server(handler) as server:
        response = await client.stream("POST", server.url)
        assert await anext(response.lines()) == "data: [DONE]"
        response.linger()
        await asyncio.sleep(0.3)
        async with await client.stream("POST", server.url) as second:
            assert await second.read() == b"2"
        assert server.connections == 1


async def test_connect_refused(client: Client) -> None:
    with pytest.raises(ConnectError):
        await client.stream("POST", f"http://127.0.0.1:{free_port()}/v1/x", connect_timeout=2)


async def test_garbage_is_a_protocol_error(client: Client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"this is not HTTP\r\n\r\n")
        await asyncio.sleep(1)

    async with Server(handler) as server:
        with pytest.raises(ProtocolError):
            await client.stream("POST", server.url)
