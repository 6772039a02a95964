"""The OpenAI SSE parser turns upstream lines into deltas and a finish, or a structured error."""

from __future__ import annotations

import pytest

from switchyard.contracts import Delta, ErrorCode, SwitchyardError
from switchyard.inference.providers.base import Finish, ProviderEvent
from switchyard.inference.providers.openai import _SseReader


def parse(*items: str, chat: bool = True) -> list[ProviderEvent]:
    """The events of `items` arriving one line per read, as the adapter's loop reads them: the
    deltas, then the finish (at `[DONE]`, or when the lines run out)."""
    reader = _SseReader(chat=chat)
    events: list[ProviderEvent] = []
    for item in items:
        event = reader.take([item])
        if isinstance(event, list):
            events.extend(event)
        elif event is not None:
            events.append(event)
        if isinstance(event, Finish):
            return events
    events.append(reader.finish(done=False))
    return events


def test_text_then_usage() -> None:
    events = parse(
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


def test_usage_counted_locally_when_upstream_sends_none() -> None:
    events = parse(
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
def test_failures(items: list[str], code: ErrorCode) -> None:
    with pytest.raises(SwitchyardError) as raised:
        parse(*items)
    assert raised.value.code == code


def test_lines_that_arrive_together_come_as_one_burst() -> None:
    reader = _SseReader(chat=True)
    batches = [
        [
            'data: {"choices":[{"delta":{"content":"a"}}]}',
            "",
            'data: {"choices":[{"delta":{"content":"b"}}]}',
            "",
        ],
        [": keep-alive", ""],
        ['data: {"choices":[{"delta":{"content":"c"}}]}', ""],
        ['data: {"choices":[{"delta":{},"finish_reason":"stop"}]}', "", "data: [DONE]"],
    ]
    events = [reader.take(batch) for batch in batches]
    assert events[0] == [Delta(content="a"), Delta(content="b")]
    assert events[1] is None  # nothing to relay
    assert events[2] == Delta(content="c")
    assert isinstance(events[3], Finish)
    assert events[3].finish_reason == "stop"
    assert events[3].tail == []


def test_fragments_that_arrive_with_the_end_ride_on_the_finish() -> None:
    reader = _SseReader(chat=True)
    assert reader.take(['data: {"choices":[{"delta":{"content":"a"}}]}', ""]) == Delta(content="a")
    finish = reader.take(
        [
            'data: {"choices":[{"delta":{"content":"b"}}]}',
            "",
            'data: {"choices":[{"delta":{"content":"c"},"finish_reason":"length"}]}',
            "",
            'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
            "data: [DONE]",
        ]
    )
    assert isinstance(finish, Finish)
    assert finish.tail == [Delta(content="b"), Delta(content="c")]
    assert finish.finish_reason == "length"
    assert finish.usage.total_tokens == 5


def test_body_that_ends_without_done_needs_a_finish_reason() -> None:
    reader = _SseReader(chat=True)
    reader.take(['data: {"choices":[{"delta":{"content":"a"}}]}', ""])
    with pytest.raises(SwitchyardError) as raised:
        reader.finish(done=False)
    assert raised.value.code == ErrorCode.PROVIDER_ERROR
    reader.take(['data: {"choices":[{"delta":{},"finish_reason":"stop"}]}', ""])
    assert reader.finish(done=False).finish_reason == "stop"
