"""Contracts: valid ranges, the stream protocol's messages, and the error registry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from switchyard.contracts import (
    ERROR_REGISTRY,
    STREAM_MESSAGE,
    ChatCompletionRequest,
    ChatRequestMessage,
    Delta,
    EnvelopeFields,
    ErrorBody,
    ErrorCode,
    StreamChunk,
    StreamDone,
    StreamError,
    Usage,
    deadline_in,
    subjects,
)

HEAD: EnvelopeFields = {"request_id": "r1", "tenant_id": "t1", "deadline": deadline_in(10)}


def chat(**extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    )


def test_every_code_is_registered() -> None:
    assert set(ERROR_REGISTRY) == set(ErrorCode)


def test_error_body_takes_retryable_from_registry() -> None:
    assert ErrorBody.of(ErrorCode.PROVIDER_TIMEOUT, "slow").retryable is True
    assert ErrorBody.of(ErrorCode.INVALID_REQUEST, "bad").retryable is False


@pytest.mark.parametrize(
    "extra",
    [
        {"temperature": -0.1},
        {"temperature": 2.1},
        {"top_p": 1.5},
        {"max_tokens": 0},
        {"n": 3},
        {"frequency_penalty": 2.5},
        {"stop": ["1", "2", "3", "4", "5"]},
        {"unknown": True},
    ],
)
def test_sampling_ranges(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        chat(**extra)


def test_content_parts_and_tool_messages() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
        }
    )
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]


def test_tool_message_needs_its_call_id() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(
            {"model": "m", "messages": [{"role": "tool", "content": "42"}]}
        )


def test_request_id_must_be_a_subject_token() -> None:
    with pytest.raises(ValidationError):
        ChatRequestMessage(request_id="a.b", tenant_id="t", deadline=deadline_in(1), body=chat())
    with pytest.raises(ValidationError):
        ChatRequestMessage.model_validate(
            {"request_id": "r", "tenant_id": "t", "deadline": "2030-01-01T00:00:00", "body": chat()}
        )  # a naive deadline is ambiguous across machines


def test_stream_messages_round_trip() -> None:
    messages = [
        StreamChunk(**HEAD, seq=0, model="m", delta=Delta(role="assistant", content="he")),
        StreamDone(**HEAD, seq=1, model="m", finish_reason="stop", usage=Usage(total_tokens=3)),
        StreamError(**HEAD, seq=1, error=ErrorBody.of(ErrorCode.PROVIDER_ERROR, "x"), partial=True),
    ]
    for message in messages:
        decoded = STREAM_MESSAGE.validate_json(message.model_dump_json())
        assert decoded == message
        assert type(decoded) is type(message)


def test_deadline_helpers() -> None:
    message = ChatRequestMessage(
        request_id="r", tenant_id="t", deadline=deadline_in(5), body=chat()
    )
    assert 4 < message.remaining() <= 5
    assert not message.expired()
    assert ChatRequestMessage(
        request_id="r", tenant_id="t", deadline=deadline_in(-1), body=chat()
    ).expired()


def test_subject_names() -> None:
    assert subjects.cancel("abc") == "llm.cancel.v1.abc"
    for name in (subjects.CHAT, subjects.COMPLETION, subjects.EMBED, subjects.MODELS):
        domain, action, version = name.split(".")
        assert name == name.lower()
        assert version.startswith("v")
        assert domain
        assert action


def test_batched_chunk_round_trips_and_lists_its_fragments() -> None:
    message = StreamChunk(
        **HEAD, seq=3, model="m", delta=Delta(content="a"), more=[Delta(content="b")]
    )
    decoded = STREAM_MESSAGE.validate_json(message.model_dump_json(exclude_none=True))
    assert isinstance(decoded, StreamChunk)
    assert [d.content for d in decoded.fragments()] == ["a", "b"]
    single = StreamChunk(**HEAD, seq=0, model="m", delta=Delta(content="x"))
    assert single.fragments() == [Delta(content="x")]
    assert ChatRequestMessage(**HEAD, body=chat()).batch is False  # old requesters get singles


def test_delta_as_dict_matches_pydantic() -> None:
    tool = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    for delta in (
        Delta(),
        Delta(content="plain"),
        Delta(role="assistant", content="hi"),
        Delta.model_validate({"tool_calls": [tool]}),
    ):
        assert delta.as_dict() == delta.model_dump(exclude_none=True)
