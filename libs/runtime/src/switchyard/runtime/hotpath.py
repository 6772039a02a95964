"""The NATS hot path: messages handed to a plain function as they are parsed, publishes written
once per event-loop pass.

nats-py hands every message through a queue to a task per subscription (a Msg object, a queue
put and get, a task step) after matching it with a regular expression, and every publish
through a queue to a flusher task (a future, a queue put and get, a task step). On the request
path that is a few hundred bytecodes per message, on both services, for every request. `HotPath`
serves the few subscriptions that carry every request (the inference requests, the gateway's
reply inbox) and their publishes without those hops:

- a subscription's messages are parsed with `bytes.find` and given to a synchronous handler
  `(subject, reply, data, headers)` at once: straight from the connection's `data_received`
  while nats-py's read loop waits on an empty buffer (the read loop, a task, is then not woken
  at all: no future, task step or buffer copy per read), else from the read loop;
- a publish appends its command to nats-py's pending buffer, and one callback per event-loop pass
  writes the whole buffer (what nats-py's flusher task did, without the task).

Everything else stays nats-py's: connecting, reconnecting (subscriptions are replayed, the
pending buffer is written once connected), PING/PONG, INFO, errors, JetStream, other
subscriptions, and any frame the fast parser is not sure of (it leaves that, and everything
after it in the buffer, to nats-py's parser, which hands the hot subscriptions' messages to the
same handler). This reaches into nats-py 2.x internals (`Client._ps`, `_pending`,
`_pending_data_size`, `_flush_pending`, `Subscription._pending_queue`, the transport's
`StreamReader`); `HotPath.attach` checks for them and otherwise serves the same API through
nats-py's public one (a reader it does not recognise is left to the read loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser

log = logging.getLogger(__name__)

Headers = dict[str, str]


class Publish(Protocol):
    """`Client.publish`, or `HotPath.publish`: the same call."""

    async def __call__(
        self, subject: str, payload: bytes, reply: str = "", headers: Headers | None = None
    ) -> None: ...


Handler = Callable[[str, str, bytes, Headers | None], None]
"""A hot subscription's handler: (subject, reply, data, headers). It must not block, and it runs
inside the connection's read loop: start a task for any work that waits."""

_CRLF = b"\r\n"
_HDR_LINE = b"NATS/1.0"
_ATTACHED = "_switchyard_hot_path"


def _call(handler: Handler, subject: str, reply: str, data: bytes, headers: Headers | None) -> None:
    try:
        handler(subject, reply, data, headers)
    except Exception:  # never let a handler's bug stop the connection's read loop
        log.exception("hot-path handler failed")


class _Direct:
    """Stands in for a hot subscription's message queue: when nats-py's own parser delivers one
    of its messages, the handler gets it at once instead of a task getting it later."""

    __slots__ = ("_handler", "_sub")

    def __init__(self, sub: Subscription, handler: Handler) -> None:
        self._sub = sub
        self._handler = handler

    def put_nowait(self, msg: Msg) -> None:
        self._sub._pending_size -= len(msg.data)  # nats-py counted it as queued
        _call(self._handler, msg.subject, msg.reply, msg.data, msg.headers)

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    def task_done(self) -> None:
        return None

    async def join(self) -> None:  # draining waits for queued messages: there are none
        return None


class _Parser(Parser):
    """nats-py's parser with a fast lane for complete MSG/HMSG frames of hot subscriptions.

    The fast lane runs twice: in `parse`, for what nats-py's read loop hands over, and straight
    from the connection's `StreamReader.feed_data` (see `_hook`) while the read loop waits for
    data with nothing buffered, so that a read of hot frames only does not wake the read loop.
    """

    def __init__(self, nc: Client, handlers: dict[int, Handler], old: Parser) -> None:
        super().__init__(nc)
        self.handlers = handlers
        # Take over the old parser's state (normally empty: attached before any traffic).
        self.buf, self.state, self.needed = old.buf, old.state, old.needed
        self.header_needed, self.msg_arg = old.header_needed, old.msg_arg
        self._hooked: object = None  # the StreamReader whose feed_data is `_hook`'s

    async def parse(self, data: bytes = b"") -> None:
        buf: bytearray = self.buf
        buf.extend(data)
        if buf and self.state == AWAITING_CONTROL_LINE and (used := self.take(buf)):
            del buf[:used]
        if buf:
            await super().parse()
        self._hook()  # a new connection (after a reconnect) has a new reader

    def take(self, data: bytes | bytearray) -> int:
        """Deliver the complete hot frames at the start of `data` to their handlers; the number
        of bytes they took. It stops at the first frame it is not sure of (another subscription,
        an inline status, a frame still arriving, any other operation): nats-py parses the rest."""
        handlers = self.handlers
        stats = self.nc.stats
        pos, size_of_data = 0, len(data)
        while pos < size_of_data:
            if data.startswith(b"MSG ", pos):
                skip = 4
            elif data.startswith(b"HMSG ", pos):
                skip = 5
            else:
                break
            end = data.find(_CRLF, pos)
            if end < 0:
                break
            args = bytes(data[pos + skip : end]).split()
            # MSG <subject> <sid> [reply] <size>; HMSG <subject> <sid> [reply] <hsize> <size>
            fixed = 3 if skip == 4 else 4
            if len(args) not in (fixed, fixed + 1) or not args[1].isdigit():
                break
            handler = handlers.get(int(args[1]))
            if handler is None or not args[-1].isdigit():
                break
            size = int(args[-1])
            hsize = 0
            if skip == 5:
                if not args[-2].isdigit():
                    break
                hsize = int(args[-2])
                if hsize > size:
                    break
            start = end + 2
            stop = start + size
            if size_of_data < stop + 2:
                break  # the rest is on its way
            headers: Headers | None = None
            if hsize:
                raw = bytes(data[start : start + hsize])
                if raw[len(_HDR_LINE) : len(_HDR_LINE) + 1] == b" ":
                    break  # an inline status (503 …): nats-py's parser reads it
                headers = Client._parse_header_lines(raw[len(_HDR_LINE) :])
            try:
                subject = args[0].decode()
                reply = args[2].decode() if len(args) > fixed else ""
            except UnicodeDecodeError:
                break
            payload = bytes(data[start + hsize : stop])
            pos = stop + 2
            stats["in_msgs"] += 1
            stats["in_bytes"] += size - hsize
            _call(handler, subject, reply, payload, headers)
        return pos

    def _hook(self) -> None:
        """Route the connection's incoming bytes through `take` first (once per reader)."""
        found = getattr(self.nc._transport, "_io_reader", None)
        if found is self._hooked or not isinstance(found, asyncio.StreamReader):
            return
        reader: Any = found  # its private fields are read below
        if not all(hasattr(reader, a) for a in ("_waiter", "_buffer", "_eof", "feed_data")):
            return  # not the StreamReader this was written against: the read loop does it all
        self._hooked = reader
        feed = reader.feed_data
        parser = self

        def feed_data(data: bytes) -> None:
            # Only while the read loop waits on an empty buffer with nothing of its own half
            # parsed: then these bytes are the next ones in the stream, and the frames `take`
            # leaves (with everything after them) go to the read loop in order.
            if (
                reader._waiter is not None
                and not reader._buffer
                and not reader._eof
                and not parser.buf
                and parser.state == AWAITING_CONTROL_LINE
            ):
                used = parser.take(data)
                if used == len(data):
                    return
                data = data[used:]
            feed(data)

        reader.feed_data = feed_data


class HotPath:
    """The hot subscriptions and publishes of one nats-py client (see the module docstring)."""

    def __init__(self, nc: Client, *, direct: bool) -> None:
        self._nc = nc
        self.direct = direct  # False: nats-py's public API serves the same calls
        self._handlers: dict[int, Handler] = {}
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        if direct:
            nc._ps = _Parser(nc, self._handlers, nc._ps)

    @classmethod
    def attach(cls, nc: Client) -> HotPath:
        """The client's hot path (made once per client). Attach right after connecting, before
        the client has subscriptions of its own: the parser is swapped between two reads."""
        hot: HotPath | None = getattr(nc, _ATTACHED, None)
        if hot is None:
            hot = cls(nc, direct=cls.supported(nc))
            setattr(nc, _ATTACHED, hot)
        return hot

    @staticmethod
    def supported(nc: Client) -> bool:
        """Whether this nats-py has the internals the direct path relies on."""
        parser = getattr(nc, "_ps", None)
        return (
            type(parser) is Parser
            and isinstance(getattr(nc, "_pending", None), list)
            and hasattr(nc, "_pending_data_size")
            and hasattr(nc, "_max_pending_size")
            and hasattr(Client, "_parse_header_lines")
            and hasattr(Client, "_process_headers")
            and {"_pending_queue", "_pending_size"} <= set(Client._process_msg.__code__.co_names)
        )

    async def subscribe(self, subject: str, handler: Handler, queue: str = "") -> Subscription:
        """Subscribe `subject` (in queue group `queue`); each message goes to `handler` as soon
        as it is read. Unsubscribe with the returned subscription, as usual."""
        if not self.direct:

            async def deliver(msg: Msg) -> None:
                _call(handler, msg.subject, msg.reply, msg.data, msg.headers)

            return await self._nc.subscribe(subject, queue=queue, cb=deliver)
        sub = await self._nc.subscribe(subject, queue=queue)  # no callback: no task per message
        sub._pending_queue = _Direct(sub, handler)  # type: ignore[assignment]
        self._handlers[sub._id] = handler
        return sub

    def forget(self, sub: Subscription) -> None:
        """Stop the fast lane for `sub` (after unsubscribing it)."""
        self._handlers.pop(sub._id, None)

    async def publish(
        self, subject: str, payload: bytes, reply: str = "", headers: Headers | None = None
    ) -> None:
        """Publish as `Client.publish` does; the write happens at the end of this loop pass,
        together with every other publish of the pass."""
        nc = self._nc
        if (
            not self.direct
            or not nc.is_connected
            or nc.is_draining_pubs
            or len(payload) > nc._max_payload
            or (headers is not None and not _plain_headers(headers))
        ):
            await nc.publish(subject, payload, reply=reply, headers=headers)  # its checks, errors
            return
        if headers:
            head = b"".join(
                [_HDR_LINE, _CRLF]
                + [f"{k}: {v}\r\n".encode() for k, v in headers.items()]
                + [_CRLF]
            )
            command = b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(),
                reply.encode(),
                len(head),
                len(head) + len(payload),
                head,
                payload,
            )
        else:
            command = b"PUB %s %s %d\r\n%s\r\n" % (
                subject.encode(),
                reply.encode(),
                len(payload),
                payload,
            )
        nc.stats["out_msgs"] += 1
        nc.stats["out_bytes"] += len(payload)
        nc._pending.append(command)
        nc._pending_data_size += len(command)
        if nc._max_pending_size > 0 and nc._pending_data_size > nc._max_pending_size:
            await nc._flush_pending(force_flush=True)  # the buffer is full: wait, as nats-py does
            return
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self._write)

    def _write(self) -> None:
        self._scheduled = False
        nc = self._nc
        if not nc._pending_data_size:
            return  # nats-py's flusher wrote it already
        if not nc.is_connected or nc._transport is None:
            return  # kept: nats-py writes the pending buffer once it has reconnected
        writer: Any = getattr(nc._transport, "_io_writer", None)
        transport = getattr(writer, "transport", None)
        if transport is None or transport.get_write_buffer_size() > 0:
            # The socket is backed up (or not a plain stream): nats-py's flusher writes and
            # waits for it to drain, and publishes wait once its buffer limit is reached.
            if nc._flush_queue is not None:
                with contextlib.suppress(asyncio.QueueFull):  # then the flusher is due anyway
                    nc._flush_queue.put_nowait(asyncio.get_running_loop().create_future())
            return
        try:
            nc._transport.writelines(nc._pending)
        except Exception as exc:  # a broken connection: nats-py's read loop reconnects
            log.warning("nats write failed: %s", exc)
            return
        nc._pending = []
        nc._pending_data_size = 0


def _plain_headers(headers: Headers) -> bool:
    """Whether every header can go on the wire as it is (nats-py checks and cleans the others)."""
    for key, value in headers.items():
        if not key or ":" in key or any(c in key or c in value for c in "\r\n") or " " in key:
            return False
    return True
