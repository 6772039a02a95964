"""A small HTTP/1.1 client for provider calls: asyncio protocol + httptools, keep-alive pool.

Provider calls are the hot path of inference, and a general-purpose client costs more CPU than the
rest of a request's handling (httpx/httpcore/anyio were 58 % of inference CPU under load in the
profile). This client does only what a provider call needs: one request per connection at a time,
`Content-Length` request bodies, responses with `Content-Length`, chunked or read-to-close bodies,
a response body read incrementally (server-sent events line by line), TLS, and a pool of idle
keep-alive connections per origin. Timeouts are armed only when the caller actually has to wait.

Egress proxies are taken from the environment as other HTTP clients take them (`HTTP_PROXY`,
`HTTPS_PROXY`, `NO_PROXY`, lower-case first; read once per client): an `http` origin is asked
through the proxy in absolute form, an `https` one through a `CONNECT` tunnel with TLS to the
origin inside it. Credentials in the proxy URL go in `Proxy-Authorization` (basic).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Self, cast
from urllib.parse import unquote, urlsplit

import httptools

from switchyard.runtime.timers import wait_within


class HTTPError(Exception):
    """A failure that produced no usable HTTP response."""


class ConnectError(HTTPError):
    """The upstream could not be reached (refused, unresolvable, TLS failure)."""


class Timeout(HTTPError):
    """Connecting, or waiting for the next bytes of the response, took too long."""


class ProtocolError(HTTPError):
    """The connection broke or the upstream sent something that is not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a connection goes."""

    scheme: str
    host: str
    port: int

    def host_header(self) -> str:
        """The `Host` header value (the port only when it is not the scheme's default)."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@functools.lru_cache(maxsize=1024)  # provider URLs come from a few deployments
def split_url(url: str) -> tuple[Origin, str]:
    """The origin of `url` and the request target (path and query)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectError(f"unsupported URL {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return Origin(parts.scheme, parts.hostname, port), target


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy that requests to some origin go through."""

    host: str
    port: int
    authorization: str | None = None  # the `Proxy-Authorization` value, if it has credentials

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """A proxy from `http://[user:password@]host[:port]` (a bare `host:port` is read as
        http; an https proxy URL is refused: TLS to the proxy itself is not supported)."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ConnectError(f"unsupported proxy URL {url!r} (an http:// proxy is needed)")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, parts.port or 80, authorization)


def proxy_for(origin: Origin, proxies: Mapping[str, str]) -> Proxy | None:
    """The proxy `proxies` (as `urllib.request.getproxies_environment` gives them) route
    `origin` through, or None for a direct connection (no proxy, or `no_proxy` matches)."""
    url = proxies.get(origin.scheme)
    if not url or _bypassed(origin, proxies.get("no", "")):
        return None
    return Proxy.parse(url)


def _bypassed(origin: Origin, no_proxy: str) -> bool:
    """Whether `no_proxy` (comma-separated: `*`, hosts, `.domains`, each with an optional
    `:port`) names `origin`; a name matches itself and its subdomains."""
    host = origin.host.lower()
    for item in no_proxy.lower().split(","):
        entry = item.strip()
        if entry == "*":
            return True
        name, sep, port = entry.rpartition(":")
        if not sep or not port.isdigit() or ":" in name:  # no port (or an IPv6 address)
            name, port = entry, ""
        name = name.strip("[]").lstrip(".")
        if not name or (port and int(port) != origin.port):
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


class _Tunnel(asyncio.Protocol):
    """The proxy's answer to a `CONNECT`: its status line, once the head is in."""

    def __init__(self) -> None:
        self.head: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if b"\r\n\r\n" in self._buffer and not self.head.done():
            self.head.set_result(self._buffer.split(b"\r\n", 1)[0])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(ConnectError(f"the proxy closed the connection: {exc}"))


# Pause reading a response whose unread body grows past this (a slow consumer).
_HIGH_WATER = 1 << 20


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request/response at a time."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = 0  # responses started on this connection
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None
        self.error: HTTPError | None = None

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        response = self._response
        if response is None:  # bytes while idle: the connection is not reusable
            self.close()
            return
        response.bytes_seen = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is None or response.complete:
            return
        if response.headers_done and response.until_close:
            response.finish()  # a body delimited by the end of the connection
            return
        reason = f": {exc}" if exc else ""
        self._fail(ProtocolError(f"upstream closed the connection mid-response{reason}"))

    def pause_writing(self) -> None:  # request bodies are small; nothing to throttle
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        self._response.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self._response
        assert response is not None
        response.status = self._parser.get_status_code()
        response.headers_done = True
        headers = response.headers
        for name, value in response.raw_headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        response.until_close = "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", ""
        )
        response.wake()

    def on_body(self, body: bytes) -> None:
        response = self._response
        assert response is not None
        response.body.append(body)
        response.buffered += len(body)
        if response.buffered > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        response.wake()

    def on_message_complete(self) -> None:
        response = self._response
        assert response is not None
        response.keep_alive = self._parser.should_keep_alive()
        response.finish()

    # ------------------------------------------------------------------------------------------
    def start(self, response: Response, head: bytes, body: bytes) -> None:
        """Send a request; its response is parsed into `response`."""
        assert self.transport is not None
        self._response = response
        self.used += 1
        self.transport.write(head + body if len(body) < 16384 else head)
        if len(body) >= 16384:
            self.transport.write(body)

    def detach(self) -> None:
        """The response is over; the connection is idle again."""
        self._response = None
        self._parser = httptools.HttpResponseParser(self)

    def resume_reading(self) -> None:
        """Read again after the consumer caught up."""
        if self.transport is not None and not self.closed:
            with contextlib.suppress(Exception):
                self.transport.resume_reading()

    def _fail(self, error: HTTPError) -> None:
        response = self._response
        if response is not None and not response.complete:
            response.error = error
            response.wake()
        self.close()

    def close(self) -> None:
        """Close the connection (a response in progress ends with an error)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """One response, read while it arrives; use as an async context manager (`Client.stream`)."""

    def __init__(self, client: Client, connection: _Connection, read_timeout: float) -> None:
        self._client = client
        self._connection = connection
        self._read_timeout = read_timeout
        self.status = 0
        self.headers: dict[str, str] = {}
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.until_close = False
        self.keep_alive = False
        self.complete = False
        self.bytes_seen = False
        self.error: HTTPError | None = None
        self.body: list[bytes] = []
        self.buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._released = False
        self._linger: asyncio.TimerHandle | None = None
        self._partial = b""  # the start of a text line whose end has not arrived

    # called by the connection -----------------------------------------------------------------
    def wake(self) -> None:
        """New bytes, the end, or an error: let a waiting reader run."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def finish(self) -> None:
        """The whole response has arrived."""
        self.complete = True
        self.wake()
        if self._released:  # lingering: return the connection now
            self._recycle()

    # called by the reader ---------------------------------------------------------------------
    async def _wait(self) -> None:
        if self.error is not None:
            raise self.error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await wait_within(self._waiter, self._read_timeout)
        except TimeoutError:
            raise Timeout(
                f"no response bytes within {self._read_timeout:g}s (read timeout)"
            ) from None
        finally:
            self._waiter = None
        if self.error is not None:
            raise self.error

    async def _head(self) -> None:
        while not self.headers_done:
            await self._wait()

    # The hot path reads with `next_chunk` / `next_lines`, plain coroutines: an async generator
    # left unfinished (a stream read up to `[DONE]`) is finalised by a task the event loop
    # schedules — a task and a wake-up per request. The iterators below are for everyone else.
    async def next_chunk(self) -> bytes | None:
        """Everything buffered since the last call (waiting for bytes if there are none yet);
        None once the body has ended."""
        while True:
            if self.body:
                data = b"".join(self.body) if len(self.body) > 1 else self.body[0]
                self.body.clear()
                if self.buffered > _HIGH_WATER:
                    self._connection.resume_reading()
                self.buffered = 0
                return data
            if self.complete:
                return None
            await self._wait()

    async def next_lines(self) -> list[str] | None:
        """The complete text lines that arrived together, without their line endings (for
        server-sent events); None once the body has ended."""
        while True:
            data = await self.next_chunk()
            if data is None:
                if not self._partial:
                    return None
                data, self._partial = self._partial, b""
                return [data.removesuffix(b"\r").decode("utf-8", "replace")]
            if self._partial:
                data = self._partial + data
            *complete, self._partial = data.split(b"\n")
            if complete:
                return [line.removesuffix(b"\r").decode("utf-8", "replace") for line in complete]

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each item is everything buffered since the last one."""
        while (data := await self.next_chunk()) is not None:
            yield data

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while (data := await self.next_chunk()) is not None:
            parts.append(data)
        return b"".join(parts)

    async def line_batches(self) -> AsyncIterator[list[str]]:
        """The body as batches of text lines (see `next_lines`)."""
        while (batch := await self.next_lines()) is not None:
            yield batch

    async def lines(self) -> AsyncIterator[str]:
        """The body as text lines, one at a time."""
        async for batch in self.line_batches():
            for line in batch:
                yield line

    def linger(self, timeout: float = 1.0) -> None:
        """The caller has all it needs: release now, and let the rest of the message (say, a
        chunked terminator) arrive in the background, so the connection returns to the pool; it
        is closed if the message does not end within `timeout` seconds."""
        if self.complete or self._connection.closed:
            self.release()
            return
        self._released = True
        self._linger = asyncio.get_running_loop().call_later(timeout, self._connection.close)

    def release(self) -> None:
        """Done with the response: a complete keep-alive one returns its connection to the pool;
        an unfinished one closes its connection (which stops the upstream's work)."""
        if self._released:
            return
        self._released = True
        if self.complete:
            self._recycle()
        else:
            self._connection.close()

    def _recycle(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
        connection = self._connection
        connection.detach()
        if self.keep_alive and not connection.closed and self.error is None:
            self._client.give_back(connection)
        else:
            connection.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Client:
    """A keep-alive connection pool with a `stream()` call. One per provider adapter."""

    def __init__(
        self,
        max_idle_per_origin: int = 100,
        ssl_context: ssl.SSLContext | None = None,
        proxies: Mapping[str, str] | None = None,
    ):
        """`proxies`: scheme → proxy URL, plus `no` (hosts to reach directly); by default the
        environment's (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`)."""
        self._idle: dict[Origin, list[_Connection]] = {}
        self._max_idle = max_idle_per_origin
        self._ssl = ssl_context
        self._closed = False
        self._proxies = dict(
            urllib.request.getproxies_environment() if proxies is None else proxies
        )
        self._routes: dict[Origin, Proxy | None] = {}

    def _route(self, origin: Origin) -> Proxy | None:
        try:
            return self._routes[origin]
        except KeyError:
            route = self._routes[origin] = proxy_for(origin, self._proxies)
            return route

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def give_back(self, connection: _Connection) -> None:
        """Keep an idle connection for the next request to its origin."""
        idle = self._idle.setdefault(connection.origin, [])
        if self._closed or len(idle) >= self._max_idle:
            connection.close()
        else:
            idle.append(connection)

    def _checkout(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, origin: Origin, proxy: Proxy | None, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = origin.scheme == "https"
        where = f"{origin.host}:{origin.port}"
        if proxy is not None:
            where += f" through the proxy {proxy.host}:{proxy.port}"
        try:
            async with asyncio.timeout(timeout):
                if proxy is not None and tls:
                    return await self._tunnel(origin, proxy)
                host, port = (proxy.host, proxy.port) if proxy else (origin.host, origin.port)
                _, protocol = await loop.create_connection(
                    lambda: _Connection(origin),
                    host,
                    port,
                    ssl=self._ssl_context() if tls else None,
                    server_hostname=origin.host if tls else None,
                )
        except TimeoutError:
            raise Timeout(f"connecting to {where} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"{where}: {exc}") from exc
        return protocol

    async def _tunnel(self, origin: Origin, proxy: Proxy) -> _Connection:
        """A TLS connection to `origin` inside a `CONNECT` tunnel through `proxy`."""
        loop = asyncio.get_running_loop()
        transport, tunnel = await loop.create_connection(_Tunnel, proxy.host, proxy.port)
        try:
            host = f"[{origin.host}]" if ":" in origin.host else origin.host
            authority = f"{host}:{origin.port}"  # CONNECT names the port, default or not
            head = [f"CONNECT {authority} HTTP/1.1", f"host: {authority}"]
            if proxy.authorization:
                head.append(f"proxy-authorization: {proxy.authorization}")
            transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            status_line = await tunnel.head
            status = status_line.split(b" ", 2)
            if len(status) < 2 or status[1] != b"200":
                raise ConnectError(
                    f"the proxy {proxy.host}:{proxy.port} refused the tunnel to {authority}: "
                    + status_line.decode("latin-1", "replace")
                )
            connection = _Connection(origin)
            tls = await loop.start_tls(
                transport, connection, self._ssl_context(), server_hostname=origin.host
            )
        except BaseException:
            transport.close()
            raise
        assert tls is not None
        connection.connection_made(tls)  # start_tls does not call it
        return connection

    async def stream(
        self,
        method: str,
        url: str,
        *,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> Response:
        """Send a request and return its response once the status and headers are in.

        The body is read from the response (`chunks`, `lines`, `read`); `release` it when done
        (or use it as an async context manager). A reused keep-alive connection that turns out
        to be closed before any response byte is replaced by a fresh one, once.
        """
        if self._closed:
            raise ConnectError("the client is closed")
        origin, target = split_url(url)
        proxy = self._route(origin)
        if proxy is not None and origin.scheme == "http":  # a forward proxy: absolute form
            target = f"http://{origin.host_header()}{target}"
        head = [f"{method} {target} HTTP/1.1", f"host: {origin.host_header()}"]
        if proxy is not None and origin.scheme == "http" and proxy.authorization:
            head.append(f"proxy-authorization: {proxy.authorization}")
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if content or method in ("POST", "PUT", "PATCH"):
            head.append(f"content-length: {len(content)}")
        request_head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        for _ in range(2):
            connection = self._checkout(origin)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(origin, proxy, connect_timeout)
            response = Response(self, connection, read_timeout)
            connection.start(response, request_head, content)
            try:
                await response._head()
            except ProtocolError:
                connection.close()
                if reused and not response.bytes_seen:
                    continue  # the upstream had closed the idle connection: retry on a new one
                raise
            except BaseException:
                connection.close()
                raise
            return response
        raise ProtocolError("upstream closed the connection before answering")  # pragma: no cover

    async def aclose(self) -> None:
        """Close every idle connection; later calls fail."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
