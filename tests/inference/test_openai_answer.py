"""The OpenAI adapter's reading of a whole (non-streamed) answer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.inference.providers.openai import _answer


def body(**fields: Any) -> bytes:
    return orjson.dumps({"id": "x", "object": "chat.completion", **fields})


def test_chat_answer_is_one_fragment_with_finish_and_usage() -> None:
    finish = _answer(
        body(
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi there."},
                    "finish_reason": "length",
                }
            ],
            usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        ),
        chat=True,
    )
    assert [d.content for d in finish.tail] == ["Hi there."]
    assert finish.finish_reason == "length"
    assert (finish.usage.prompt_tokens, finish.usage.completion_tokens) == (3, 2)
    assert finish.usage.total_tokens == 5


def test_whole_tool_calls_get_their_index() -> None:
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": f"f{i}", "arguments": "{}"}}
        for i in range(2)
    ]
    finish = _answer(
        body(
            choices=[
                {
                    "message": {"role": "assistant", "content": None, "tool_calls": calls},
                    "finish_reason": "tool_calls",
                }
            ]
        ),
        chat=True,
    )
    (delta,) = finish.tail
    assert delta.content is None
    assert delta.tool_calls is not None
    assert [(c.index, c.id, c.function) for c in delta.tool_calls] == [
        (0, "call_0", {"name": "f0", "arguments": "{}"}),
        (1, "call_1", {"name": "f1", "arguments": "{}"}),
    ]
    assert finish.finish_reason == "tool_calls"
    assert finish.usage.completion_tokens == 1  # no usage from upstream: one fragment counted


def test_text_completion_and_unknown_finish_reason() -> None:
    finish = _answer(body(choices=[{"text": "four", "finish_reason": "something_new"}]), chat=False)
    assert [d.content for d in finish.tail] == ["four"]
    assert finish.finish_reason == "stop"


def test_empty_answer_has_no_fragment() -> None:
    finish = _answer(
        body(choices=[{"message": {"content": ""}, "finish_reason": "stop"}]), chat=True
    )
    assert finish.tail == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", ErrorCode.PROVIDER_BAD_RESPONSE),
        (b"[1, 2]", ErrorCode.PROVIDER_BAD_RESPONSE),
        (body(choices=[]), ErrorCode.PROVIDER_BAD_RESPONSE),
        (body(choices=["text"]), ErrorCode.PROVIDER_BAD_RESPONSE),
        (body(choices=[{"message": {"content": 5}}]), ErrorCode.PROVIDER_BAD_RESPONSE),
        (
            body(choices=[{"message": {"content": "x"}}], usage={"prompt_tokens": "many"}),
            ErrorCode.PROVIDER_BAD_RESPONSE,
        ),
        (orjson.dumps({"error": {"message": "overloaded"}}), ErrorCode.PROVIDER_ERROR),
    ],
)
def test_malformed_answers_are_structured_errors(raw: bytes, code: ErrorCode) -> None:
    with pytest.raises(SwitchyardError) as raised:
        _answer(raw, chat=True)
    assert raised.value.code == code
