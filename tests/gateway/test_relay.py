"""The gateway's side of the stream protocol, against a scripted stand-in for inference on NATS.

The stand-in subscribes `llm.chat.v1` on a private NATS server and answers (or not) as each test
scripts it, so the gateway's own timeouts, gap checks and cancel announcements are what is tested.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from tests.support.barrier import settled
from tests.support.stacks import KEY, PrivateStack, private_stack

from switchyard.contracts import (
    ChatCompletionRequest,
    ChatRequestMessage,
    Delta,
    ErrorBody,
    ErrorCode,
    StreamChunk,
    StreamDone,
    StreamError,
    Usage,
    subjects,
)

Script = Callable[[Client, ChatRequestMessage, str], Coroutine[Any, Any, None]]
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
LIMITED_KEY = "sk-limited-key"


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    """A gateway with short timeouts and no inference service."""
    env = {
        "SWITCHYARD_GATEWAY_FIRST_TOKEN_TIMEOUT": "1",
        "SWITCHYARD_GATEWAY_IDLE_TIMEOUT": "1",
        "SWITCHYARD_GATEWAY_RESPONSE_TIMEOUT": "2",
        # A second tenant with a rate limit: 1 request/s, a bucket of 2.
        "SWITCHYARD_GATEWAY_API_KEYS": f"{KEY},{LIMITED_KEY}=limited",
        "SWITCHYARD_GATEWAY_TENANT_RATE_LIMITS": "limited=1",
        "SWITCHYARD_GATEWAY_RATE_LIMIT_BURST": "2",
    }
    with private_stack(tmp_path_factory.mktemp("lone"), gateway_env=env) as stack:
        yield stack


@pytest.fixture(scope="module")
async def lone_http(lone: PrivateStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=lone.base_url, headers=lone.headers, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
async def nc(lone: PrivateStack) -> AsyncIterator[Client]:
    client = await nats.connect(lone.nats.url)
    yield client
    await client.drain()


class FakeInference:
    """Runs one script per request that arrives on `llm.chat.v1`."""

    def __init__(self, nc: Client, script: Script) -> None:
        self.nc = nc
        self.script = script
        self.requests: list[ChatRequestMessage] = []
        self.raw: list[bytes] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FakeInference:
        async def on_request(msg: Msg) -> None:
            request = ChatRequestMessage.model_validate_json(msg.data)
            self.requests.append(request)
            self.raw.append(msg.data)
            task = asyncio.create_task(self.script(self.nc, request, msg.reply))
            self.tasks.add(task)

        self.sub = await self.nc.subscribe(subjects.CHAT, queue="inference", cb=on_request)
        await settled(self.nc)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.sub.unsubscribe()
        for task in self.tasks:
            task.cancel()


def chunk(request: ChatRequestMessage, seq: int, text: str) -> bytes:
    message = StreamChunk(**request.header(), seq=seq, model="m", delta=Delta(content=text))
    return message.model_dump_json().encode()


async def test_no_inference_running_is_503(lone_http: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await lone_http.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert time.monotonic() - started < 0.9  # NATS says "no responders" at once; no timeout wait
    models = await lone_http.get("/v1/models")
    assert models.status_code == 503
    assert models.json()["error"]["code"] == "service_unavailable"


@pytest.mark.parametrize(
    ("streamed", "bound", "what"),
    [(True, 1.0, "no first token within 1s"), (False, 2.0, "no answer within 2s")],
)
async def test_silent_inference_times_out_at_first_message(
    lone_http: httpx.AsyncClient, nc: Client, streamed: bool, bound: float, what: str
) -> None:
    """A streamed request waits `first_token_timeout` for its first message; a non-streamed one
    `response_timeout` (inference may get its answer whole from upstream)."""

    async def silent(_nc: Client, _req: ChatRequestMessage, _reply: str) -> None:
        await asyncio.sleep(30)

    async with FakeInference(nc, silent):
        started = time.monotonic()
        response = await lone_http.post("/v1/chat/completions", json={**BODY, "stream": streamed})
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "provider_timeout"
    assert response.json()["error"]["message"] == what
    assert bound - 0.1 <= elapsed < bound + 1.0


async def test_stall_mid_stream_ends_with_partial_timeout_and_cancel(
    lone_http: httpx.AsyncClient, nc: Client
) -> None:
    async def stall(nc: Client, req: ChatRequestMessage, reply: str) -> None:
        await nc.publish(reply, chunk(req, 0, "Hello"))
        await asyncio.sleep(30)

    cancels: list[str] = []

    async def record(msg: Msg) -> None:
        cancels.append(msg.subject)

    sub = await nc.subscribe(f"{subjects.CANCEL_PREFIX}.*", cb=record)
    async with FakeInference(nc, stall) as fake:
        async with lone_http.stream(
            "POST", "/v1/chat/completions", json={**BODY, "stream": True}
        ) as r:
            assert r.status_code == 200
            lines = [line async for line in r.aiter_lines() if line]
        await asyncio.sleep(0.3)
    await sub.unsubscribe()
    assert '"Hello"' in lines[0]
    assert '"code":"provider_timeout"' in lines[-1]
    assert '"partial":true' in lines[-1]
    assert cancels == [subjects.cancel(fake.requests[0].request_id)]


async def test_sequence_gap_is_detected(lone_http: httpx.AsyncClient, nc: Client) -> None:
    async def gap(nc: Client, req: ChatRequestMessage, reply: str) -> None:
        await nc.publish(reply, chunk(req, 0, "a"))
        await nc.publish(reply, chunk(req, 2, "c"))  # seq 1 is lost

    async with (
        FakeInference(nc, gap),
        lone_http.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as r,
    ):
        lines = [line async for line in r.aiter_lines() if line]
    assert '"code":"stream_broken"' in lines[-1]
    assert "data: [DONE]" not in lines


async def test_error_before_first_token_maps_to_status(
    lone_http: httpx.AsyncClient, nc: Client
) -> None:
    async def overloaded(nc: Client, req: ChatRequestMessage, reply: str) -> None:
        error = StreamError(**req.header(), seq=0, error=ErrorBody.of(ErrorCode.OVERLOADED, "busy"))
        await nc.publish(reply, error.model_dump_json().encode())

    async with FakeInference(nc, overloaded):
        response = await lone_http.post("/v1/chat/completions", json={**BODY, "stream": True})
    assert response.status_code == 503
    assert response.json()["error"] == {
        "message": "busy",
        "type": "server_error",
        "code": "overloaded",
        "param": None,
        "retryable": True,
    }


async def test_request_carries_envelope_and_deadline(
    lone_http: httpx.AsyncClient, nc: Client
) -> None:
    async def answer(nc: Client, req: ChatRequestMessage, reply: str) -> None:
        await nc.publish(reply, chunk(req, 0, "ok"))
        done = StreamDone(**req.header(), seq=1, model="m", finish_reason="stop", usage=Usage())
        await nc.publish(reply, done.model_dump_json().encode())

    async with FakeInference(nc, answer) as fake:
        response = await lone_http.post(
            "/v1/chat/completions", json=BODY, headers={"x-switchyard-timeout": "7"}
        )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "ok"
    request = fake.requests[0]
    assert request.tenant_id == "default"
    assert request.request_id == response.headers["x-request-id"]
    assert 5 < request.remaining() <= 7
    # The wire carries what was set, not every default: the same request, in fewer bytes.
    sent = json.loads(fake.raw[0])
    assert sent["body"] == BODY
    assert request.body == ChatCompletionRequest.model_validate(BODY)
    assert (sent["cache"], sent["batch"]) == ("auto", True)


async def test_repeated_header_counts_its_first_value(
    lone_http: httpx.AsyncClient, nc: Client
) -> None:
    """The gateway reads each header once per request, the first of repeated ones winning (as
    Starlette's `Headers.get`): the cache mode and the deadline inference gets say so."""

    async def answer(nc: Client, req: ChatRequestMessage, reply: str) -> None:
        done = StreamDone(**req.header(), seq=0, model="m", finish_reason="stop", usage=Usage())
        await nc.publish(reply, done.model_dump_json().encode())

    headers = [
        ("x-switchyard-cache", "off"),
        ("x-switchyard-timeout", "4"),
        ("x-switchyard-cache", "on"),
        ("x-switchyard-timeout", "9"),
    ]
    async with FakeInference(nc, answer) as fake:
        response = await lone_http.post("/v1/chat/completions", json=BODY, headers=headers)
    assert response.status_code == 200
    request = fake.requests[0]
    assert request.cache == "off"
    assert 2 < request.remaining() <= 4


async def test_body_travels_to_inference_as_the_client_sent_it(
    lone_http: httpx.AsyncClient, nc: Client
) -> None:
    """The validated body is not serialised again: its bytes go to inference as they came, and
    inference's validation of them gives the gateway's body, with the same fields set."""

    async def answer(nc: Client, req: ChatRequestMessage, reply: str) -> None:
        done = StreamDone(**req.header(), seq=0, model="m", finish_reason="stop", usage=Usage())
        await nc.publish(reply, done.model_dump_json().encode())

    raw = (
        b'{ "model" : "m",\n  "messages": [{"role": "user", "content": '
        b'[{"type": "text", "text": "caf\\u00e9 \xe2\x98\x95"}]}],\n  "temperature": 1 }'
    )
    async with FakeInference(nc, answer) as fake:
        response = await lone_http.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code == 200
    assert raw in fake.raw[0]
    request = fake.requests[0]
    assert request.body == ChatCompletionRequest.model_validate_json(raw)
    assert request.body.model_fields_set == {"model", "messages", "temperature"}
    assert request.body.messages[0].content[0].text == "caf\u00e9 \u2615"  # type: ignore[union-attr,index]
    assert (request.cache, request.batch) == ("auto", True)


async def test_batched_fragments_become_one_sse_event_each(
    lone_http: httpx.AsyncClient, nc: Client
) -> None:
    async def burst(nc: Client, req: ChatRequestMessage, reply: str) -> None:
        first = StreamChunk(
            **req.header(),
            seq=0,
            model="m",
            delta=Delta(role="assistant", content="a"),
            more=[Delta(content="b"), Delta(content="c")],
        )
        second = StreamChunk(
            **req.header(), seq=1, model="m", delta=Delta(content="d"), more=[Delta(content="e")]
        )
        done = StreamDone(
            **req.header(), seq=2, model="m", finish_reason="stop", usage=Usage(total_tokens=5)
        )
        for message in (first, second, done):
            await nc.publish(reply, message.model_dump_json().encode())

    async with FakeInference(nc, burst) as fake:
        response = await lone_http.post("/v1/chat/completions", json={**BODY, "stream": True})
        plain = await lone_http.post("/v1/chat/completions", json=BODY)
    assert all(request.batch for request in fake.requests)  # the gateway asks for batches
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-2]]
    assert deltas == [
        {"role": "assistant", "content": "a"},
        {"content": "b"},
        {"content": "c"},
        {"content": "d"},
        {"content": "e"},
    ]
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"
    assert plain.json()["choices"][0]["message"]["content"] == "abcde"


async def test_fragments_on_done_are_relayed_before_the_end(
    lone_http: httpx.AsyncClient, nc: Client
) -> None:
    async def short(nc: Client, req: ChatRequestMessage, reply: str) -> None:
        done = StreamDone(
            **req.header(),
            seq=0,
            model="m",
            deltas=[Delta(role="assistant", content="Hel"), Delta(content="lo")],
            finish_reason="length",
            usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        )
        await nc.publish(reply, done.model_dump_json().encode())

    async with FakeInference(nc, short):
        body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
        response = await lone_http.post("/v1/chat/completions", json=body)
        plain = await lone_http.post("/v1/chat/completions", json=BODY)
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks[:2]] == [
        {"role": "assistant", "content": "Hel"},
        {"content": "lo"},
    ]
    assert chunks[2]["choices"][0]["finish_reason"] == "length"
    assert chunks[3]["usage"]["total_tokens"] == 3
    assert len(chunks) == 4
    answer = plain.json()
    assert answer["choices"][0]["message"]["content"] == "Hello"
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 2


async def test_rate_limit_per_tenant(lone_http: httpx.AsyncClient) -> None:
    limited = {"authorization": f"Bearer {LIMITED_KEY}"}
    statuses = [
        (await lone_http.post("/v1/chat/completions", json=BODY, headers=limited)).status_code
        for _ in range(2)
    ]
    assert statuses == [503, 503]  # admitted (the bucket holds 2), then no inference is running
    refused = await lone_http.post("/v1/chat/completions", json=BODY, headers=limited)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["retryable"] is True
    assert refused.headers["retry-after"] == "1"
    models = await lone_http.get("/v1/models", headers=limited)
    assert models.status_code == 429  # every route of the tenant counts
    for _ in range(5):  # another tenant is not limited
        other = await lone_http.post("/v1/chat/completions", json=BODY)
        assert other.status_code == 503
    await asyncio.sleep(1.1)  # one token back after a second
    again = await lone_http.post("/v1/chat/completions", json=BODY, headers=limited)
    assert again.status_code == 503
