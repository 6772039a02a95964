"""The OpenAI SSE parser turns upstream lines into deltas and a finish, or a structured error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchyard.contracts import Delta, ErrorCode, SwitchyardError
from switchyard.inference.providers.base import Finish, ProviderEvent
from switchyard.inference.providers.openai import _parse_sse, _parse_sse_bursts


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def parse(*items: str, chat: bool = True) -> list[ProviderEvent]:
    return [event async for event in _parse_sse(lines(*items), chat=chat)]


async def test_text_then_usage() -> None:
    events = await parse(
        'data: {"choices":[{"delta":{"role":"assistant","content":"Hel"}}]}',
        "",
        ": keep-alive comment",
        'data: {"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}',
        'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}',
        "data: [DONE]",
    )
    assert events[:2] == [Delta(content="Hel"), Delta(content="lo")]
    finish = events[2]
    assert isinstance(finish, Finish)
    assert finish.finish_reason == "stop"
    assert finish.usage.total_tokens == 5


async def test_usage_counted_locally_when_upstream_sends_none() -> None:
    events = await parse(
        'data: {"choices":[{"text":"a","finish_reason":"length"}]}', "data: [DONE]", chat=False
    )
    assert events[-1] == Finish(finish_reason="length", usage=events[-1].usage)  # type: ignore[union-attr]
    assert isinstance(events[-1], Finish)
    assert events[-1].usage.completion_tokens == 1


@pytest.mark.parametrize(
    ("items", "code"),
    [
        (["data: {oops"], ErrorCode.PROVIDER_BAD_RESPONSE),
        (['data: {"choices": 5}'], ErrorCode.PROVIDER_BAD_RESPONSE),
        (['data: {"choices":[{"delta":{"content":"x"}}]}'], ErrorCode.PROVIDER_ERROR),  # cut short
        (['data: {"error":{"message":"boom"}}'], ErrorCode.PROVIDER_ERROR),
    ],
)
async def test_failures(items: list[str], code: ErrorCode) -> None:
    with pytest.raises(SwitchyardError) as raised:
        await parse(*items)
    assert raised.value.code == code


async def test_lines_that_arrive_together_come_as_one_burst() -> None:
    async def batches() -> AsyncIterator[list[str]]:
        yield [
            'data: {"choices":[{"delta":{"content":"a"}}]}',
            "",
            'data: {"choices":[{"delta":{"content":"b"}}]}',
            "",
        ]
        yield ['data: {"choices":[{"delta":{"content":"c"}}]}', ""]
        yield ['data: {"choices":[{"delta":{},"finish_reason":"stop"}]}', "", "data: [DONE]"]

    events = [event async for event in _parse_sse_bursts(batches(), chat=True)]
    assert events[0] == [Delta(content="a"), Delta(content="b")]
    assert events[1] == Delta(content="c")
    assert isinstance(events[2], Finish)
    assert events[2].finish_reason == "stop"
    assert len(events) == 3
    assert events[2].tail == []


async def test_fragments_that_arrive_with_the_end_ride_on_the_finish() -> None:
    async def batches() -> AsyncIterator[list[str]]:
        yield ['data: {"choices":[{"delta":{"content":"a"}}]}', ""]
        yield [
            'data: {"choices":[{"delta":{"content":"b"}}]}',
            "",
            'data: {"choices":[{"delta":{"content":"c"},"finish_reason":"length"}]}',
            "",
            'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
            "data: [DONE]",
        ]

    events = [event async for event in _parse_sse_bursts(batches(), chat=True)]
    assert events[0] == Delta(content="a")
    finish = events[1]
    assert isinstance(finish, Finish)
    assert finish.tail == [Delta(content="b"), Delta(content="c")]
    assert finish.finish_reason == "length"
    assert finish.usage.total_tokens == 5
    assert len(events) == 2
