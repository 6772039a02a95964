"""The reply stream on a real NATS server: hand-encoded chunks must be exactly what the contract
validates, batched only for requesters that asked, with `seq` counting messages."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
from nats.aio.msg import Msg

from switchyard.contracts import (
    STREAM_MESSAGE,
    ChatCompletionRequest,
    ChatRequestMessage,
    Delta,
    StreamChunk,
    StreamDone,
    ToolCallDelta,
    Usage,
    deadline_in,
)
from switchyard.contracts.retrieval import Citation
from switchyard.inference.generation import ReplyWriter
from switchyard.inference.providers.base import Finish
from switchyard.runtime.embedded import NatsServer


def request(*, batch: bool) -> ChatRequestMessage:
    body = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    return ChatRequestMessage(
        request_id="r1", tenant_id="t1", deadline=deadline_in(10), body=body, batch=batch
    )


async def stream(server: NatsServer, *, batch: bool) -> list[Any]:
    nc = await nats.connect(server.url)
    received: list[Msg] = []
    done = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        received.append(msg)
        if b'"type":"done"' in msg.data:
            done.set()

    inbox = nc.new_inbox()
    await nc.subscribe(inbox, cb=on_message)
    writer = ReplyWriter(nc.publish, inbox, request(batch=batch), batch=batch)
    tool = ToolCallDelta.model_validate({"index": 0, "id": "c1", "function": {"name": "f"}})
    await writer.chunks("m", [Delta(content="a"), Delta(content='b "quoted"')])
    await writer.chunk("m", Delta(content="c"))
    await writer.chunks("m", [Delta(content="d"), Delta(tool_calls=[tool]), Delta(content="é")])
    await writer.last("m", [Delta(content="y"), Delta(content="z")])
    await writer.done("m", Finish("stop", Usage(total_tokens=6)))
    await asyncio.wait_for(done.wait(), 5)
    await nc.drain()
    assert writer.deltas[1].content == 'b "quoted"'
    assert [d.content for d in writer.deltas[-2:]] == ["y", "z"]  # what the cache keeps
    assert len(writer.deltas) == 8
    return [STREAM_MESSAGE.validate_json(msg.data) for msg in received]


async def short_answer(server: NatsServer, *, batch: bool) -> list[Any]:
    """An answer whose fragments all came with its end."""
    nc = await nats.connect(server.url)
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    writer = ReplyWriter(nc.publish, inbox, request(batch=batch), batch=batch)
    await writer.last("m", [Delta(content="Hello"), Delta(content=" there")])
    await writer.done("m", Finish("stop", Usage(total_tokens=2)))
    messages: list[Any] = []
    while not messages or not isinstance(messages[-1], StreamDone):
        messages.append(STREAM_MESSAGE.validate_json((await sub.next_msg(timeout=5)).data))
    await nc.drain()
    return messages


async def test_batched_stream(nats_server: NatsServer) -> None:
    messages = await stream(nats_server, batch=True)
    assert [m.seq for m in messages] == [0, 1, 2, 3]
    chunks = [m for m in messages if isinstance(m, StreamChunk)]
    fragments = [d for m in chunks for d in m.fragments()]
    assert [d.content for d in fragments] == ["a", 'b "quoted"', "c", "d", None, "é"]
    assert fragments[0].role == "assistant"
    assert fragments[4].tool_calls is not None
    assert fragments[4].tool_calls[0].function == {"name": "f"}
    assert isinstance(messages[-1], StreamDone)
    assert [d.content for d in messages[-1].fragments()] == ["y", "z"]
    assert messages[-1].usage.total_tokens == 6


async def test_batched_short_answer_is_one_message(nats_server: NatsServer) -> None:
    (done,) = await short_answer(nats_server, batch=True)
    assert isinstance(done, StreamDone)
    assert done.seq == 0
    assert [d.content for d in done.fragments()] == ["Hello", " there"]
    assert done.fragments()[0].role == "assistant"  # the first fragment of the answer


async def test_unbatched_short_answer_sends_chunks_then_done(nats_server: NatsServer) -> None:
    messages = await short_answer(nats_server, batch=False)
    assert [m.seq for m in messages] == [0, 1, 2]
    assert [m.delta.content for m in messages[:2]] == ["Hello", " there"]
    assert isinstance(messages[2], StreamDone)
    assert messages[2].deltas is None


async def test_unbatched_stream_sends_one_fragment_per_message(nats_server: NatsServer) -> None:
    messages = await stream(nats_server, batch=False)
    assert [m.seq for m in messages] == list(range(9))
    assert all(m.more is None for m in messages if isinstance(m, StreamChunk))
    contents = [m.delta.content for m in messages if isinstance(m, StreamChunk)]
    assert contents == ["a", 'b "quoted"', "c", "d", None, "é", "y", "z"]
    assert messages[-1].deltas is None


CITATION = Citation(
    index=1,
    collection="docs",
    document_id="d1",
    external_id="e1",
    chunk_id="c1",
    title=None,
    snippet="a source",
    score=0.5,
)


async def marked(server: NatsServer, *, chunked: bool) -> list[Any]:
    """A grounded answer from the cache, degraded: the first message says so."""
    nc = await nats.connect(server.url)
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    writer = ReplyWriter(nc.publish, inbox, request(batch=True), batch=True)
    writer.cache = "hit"
    writer.degraded = ["retrieval"]
    writer.citations = [CITATION]
    if chunked:
        await writer.chunks("m", [Delta(content="x"), Delta(content="y")])
    await writer.last("m", [Delta(content="z")])
    await writer.done("m", Finish("stop", Usage(prompt_tokens=1, total_tokens=1, cost_usd=0.5)))
    messages: list[Any] = []
    while not messages or not isinstance(messages[-1], StreamDone):
        messages.append(STREAM_MESSAGE.validate_json((await sub.next_msg(timeout=5)).data))
    await nc.drain()
    return messages


async def test_first_message_carries_the_marks(nats_server: NatsServer) -> None:
    first, done = await marked(nats_server, chunked=True)
    assert isinstance(first, StreamChunk)
    assert (first.cache, first.degraded, first.citations) == ("hit", ["retrieval"], [CITATION])
    assert first.fragments() == [Delta(role="assistant", content="x"), Delta(content="y")]
    assert isinstance(done, StreamDone)
    assert (done.seq, done.cache, done.degraded, done.citations) == (1, "hit", ["retrieval"], None)
    assert done.fragments() == [Delta(content="z")]
    assert done.usage == Usage(prompt_tokens=1, total_tokens=1, cost_usd=0.5)


async def test_done_alone_carries_the_marks(nats_server: NatsServer) -> None:
    (done,) = await marked(nats_server, chunked=False)
    assert isinstance(done, StreamDone)
    assert (done.seq, done.cache, done.degraded) == (0, "hit", ["retrieval"])
    assert done.citations == [CITATION]
    assert done.fragments() == [Delta(role="assistant", content="z")]
