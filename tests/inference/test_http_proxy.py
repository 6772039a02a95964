"""The provider HTTP client through an egress proxy: a real loopback proxy (absolute-form
forwarding and CONNECT tunnels) in front of real origins, one of them TLS with a certificate made
for the test."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.http_server import Server, json_answer, read_request

from switchyard.inference.providers.client import (
    Client,
    ConnectError,
    Origin,
    Proxy,
    proxy_for,
)


class ProxyServer(Server):
    """A loopback HTTP proxy: CONNECT tunnels to 127.0.0.1, and absolute-form requests, which it
    answers itself (recording what came). `refuse` answers every CONNECT with that status."""

    def __init__(self, refuse: str | None = None) -> None:
        super().__init__(self._proxy)
        self.refuse = refuse
        self.heads: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://user:p%40ss@127.0.0.1:{self.port}"

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)  # a CONNECT has no body
        self.heads.append(head)
        if head.startswith(b"CONNECT "):
            await self._tunnel(head, reader, writer)
            return
        writer.write(json_answer(b'{"proxied":' + body + b"}"))
        await writer.drain()

    async def _tunnel(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.refuse:
            writer.write(f"HTTP/1.1 {self.refuse}\r\ncontent-length: 0\r\n\r\n".encode())
            await writer.drain()
            return
        port = int(head.split(b" ", 2)[1].rsplit(b":", 1)[1])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (openssl, as Debian ships it)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def tls_origin(certificate: tuple[Path, Path]) -> AsyncIterator[int]:
    """An HTTPS origin on 127.0.0.1 (certificate for localhost) that echoes the request body."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            while True:
                _, body = await read_request(reader)
                writer.write(json_answer(b'{"tls":' + body + b"}"))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1]
    server.close()


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


async def test_http_origin_goes_through_the_proxy_in_absolute_form() -> None:
    async with ProxyServer() as proxy:
        client = Client(proxies={"http": proxy.url})
        try:
            for i in range(2):
                async with await client.stream(
                    "POST", "http://models.example:8000/v1/chat", content=b"%d" % i
                ) as response:
                    assert response.status == 200
                    assert await response.read() == b'{"proxied":%d}' % i
        finally:
            await client.aclose()
    head = proxy.heads[0]
    assert head.startswith(b"POST http://models.example:8000/v1/chat HTTP/1.1\r\n")
    assert b"\r\nhost: models.example:8000\r\n" in head
    credentials = base64.b64encode(b"user:p@ss")
    assert b"\r\nproxy-authorization: Basic " + credentials + b"\r\n" in head
    assert len(proxy.heads) == 2  # kept alive: both requests on one proxy connection


async def test_https_origin_is_reached_through_a_connect_tunnel(
    certificate: tuple[Path, Path], tls_origin: int
) -> None:
    async with ProxyServer() as proxy:
        client = Client(ssl_context=trusting(certificate), proxies={"https": proxy.url})
        try:
            for i in range(2):
                async with await client.stream(
                    "POST", f"https://localhost:{tls_origin}/v1/chat", content=b"%d" % i
                ) as response:
                    assert response.status == 200
                    assert await response.read() == b'{"tls":%d}' % i
        finally:
            await client.aclose()
    (head,) = proxy.heads  # one tunnel, kept alive for the second request
    assert head.startswith(b"CONNECT localhost:%d HTTP/1.1\r\n" % tls_origin)
    assert b"\r\nproxy-authorization: Basic " in head


async def test_a_refused_tunnel_is_a_connect_error(certificate: tuple[Path, Path]) -> None:
    async with ProxyServer(refuse="407 Proxy Authentication Required") as proxy:
        client = Client(ssl_context=trusting(certificate), proxies={"https": proxy.url})
        try:
            with pytest.raises(ConnectError, match=r"refused the tunnel.*407"):
                await client.stream("POST", "https://localhost:9/v1/chat", content=b"{}")
        finally:
            await client.aclose()


async def test_no_proxy_hosts_are_reached_directly() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(json_answer(b'{"direct":true}'))

    async with ProxyServer() as proxy, Server(handler) as server:
        client = Client(proxies={"http": proxy.url, "no": "localhost, 127.0.0.1"})
        try:
            async with await client.stream("POST", server.url, content=b"{}") as response:
                assert await response.read() == b'{"direct":true}'
        finally:
            await client.aclose()
    assert proxy.heads == []


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("api.openai.com", 443, "", False),
        ("api.openai.com", 443, "*", True),
        ("api.openai.com", 443, "openai.com", True),
        ("api.openai.com", 443, ".openai.com", True),
        ("openai.com", 443, ".openai.com", True),
        ("notopenai.com", 443, "openai.com", False),
        ("api.openai.com", 443, "openai.com:8443", False),
        ("api.openai.com", 8443, "openai.com:8443", True),
        ("API.OpenAI.com", 443, " other.org , OPENAI.COM ", True),
    ],
)
def test_no_proxy_matching(host: str, port: int, no_proxy: str, bypassed: bool) -> None:
    proxies = {"https": "http://proxy.internal:3128", "no": no_proxy}
    route = proxy_for(Origin("https", host, port), proxies)
    assert (route is None) == bypassed
    if route is not None:
        assert route == Proxy("proxy.internal", 3128)


def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    for name in ("https_proxy", "no_proxy", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    client = Client()
    assert client._route(Origin("https", "api.openai.com", 443)) == Proxy("proxy.internal", 3128)
    assert client._route(Origin("https", "localhost", 443)) is None
    assert client._route(Origin("http", "api.openai.com", 80)) is None


def test_an_https_proxy_url_is_refused_clearly() -> None:
    with pytest.raises(ConnectError, match="http:// proxy is needed"):
        proxy_for(Origin("https", "api.openai.com", 443), {"https": "https://proxy:443"})
