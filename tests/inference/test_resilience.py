"""Failure handling end to end: retries, retry budget, circuit breaker, fallback, degradation,
cache and usage — against the scripted fake provider, through the gateway and NATS."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
from nats.aio.msg import Msg
from tests.conftest import OTHER_KEY, Stack
from tests.support.barrier import settled
from tests.support.fake_openai import OK_TEXT, FakeOpenAI
from tests.support.stacks import PrivateStack, private_stack

from switchyard.contracts import (
    STREAM_MESSAGE,
    ChatCompletionRequest,
    ChatRequestMessage,
    ErrorCode,
    StreamError,
    UsageEvent,
    deadline_in,
    subjects,
)
from switchyard.runtime.embedded import NatsServer, free_port


def chat(model: str, prompt: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt or f"test-{uuid.uuid4().hex}"}],
        **extra,
    }


async def deployment_health(http: httpx.AsyncClient, model: str) -> dict[str, dict[str, Any]]:
    models = (await http.get("/v1/models")).json()["data"]
    card = next(m for m in models if m["id"] == model)
    return {d["name"]: d for d in card["deployments"]}


async def test_429_with_retry_after_is_retried_after_the_wait(
    http: httpx.AsyncClient, fake_provider: FakeOpenAI
) -> None:
    prompt = f"test-{uuid.uuid4().hex}"
    started = time.monotonic()
    response = await http.post("/v1/chat/completions", json=chat("retry-429", prompt))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == OK_TEXT
    calls = fake_provider.history[prompt]
    assert len(calls) == 2  # one 429, one retry
    assert calls[1].started - calls[0].started >= 1.0  # Retry-After: 1 honoured
    assert time.monotonic() - started >= 1.0


async def test_outage_opens_breaker_then_fallback_then_probe_closes_it(
    http: httpx.AsyncClient, fake_provider: FakeOpenAI
) -> None:
    fake_provider.modes["breaker-primary"] = "unavailable"
    first = await http.post("/v1/chat/completions", json=chat("breaker"))
    assert first.status_code == 200  # the fallback deployment answered
    assert first.json()["choices"][0]["message"]["content"] == OK_TEXT
    assert fake_provider.counts["breaker-primary"] == 3  # attempts stop at max_attempts
    health = await deployment_health(http, "breaker")
    assert health["breaker-primary"]["state"] == "open"
    assert health["breaker-fallback"]["state"] == "closed"

    for _ in range(3):  # while open, requests go straight to the fallback
        response = await http.post("/v1/chat/completions", json=chat("breaker"))
        assert response.status_code == 200
    assert fake_provider.counts["breaker-primary"] == 3

    fake_provider.modes["breaker-primary"] = "ok"  # the outage ends
    await asyncio.sleep(2.1)  # the cooldown
    probe = await http.post("/v1/chat/completions", json=chat("breaker"))
    assert probe.status_code == 200
    assert fake_provider.counts["breaker-primary"] == 4  # exactly one probe
    health = await deployment_health(http, "breaker")
    assert health["breaker-primary"]["state"] == "closed"


async def test_sustained_outage_stays_within_retry_budget(
    http: httpx.AsyncClient, fake_provider: FakeOpenAI
) -> None:
    fake_provider.modes["budget-primary"] = "unavailable"
    before = fake_provider.counts["budget-primary"]
    responses = await asyncio.gather(
        *(http.post("/v1/chat/completions", json=chat("budget")) for _ in range(50))
    )
    assert {r.status_code for r in responses} == {503}
    assert {r.json()["error"]["code"] for r in responses} == {"provider_unavailable"}
    calls = fake_provider.counts["budget-primary"] - before
    # 50 first attempts; max_attempts=5 would allow 200 more, the 20 % budget allows 10.
    assert 50 <= calls <= 50 + 10, calls
    assert calls > 50  # the budget did allow some retries


async def test_stream_cut_is_never_retried(
    http: httpx.AsyncClient, fake_provider: FakeOpenAI
) -> None:
    prompt = f"test-{uuid.uuid4().hex}"
    async with http.stream(
        "POST", "/v1/chat/completions", json=chat("fake-cut", prompt, stream=True)
    ) as r:
        lines = [line async for line in r.aiter_lines() if line]
    assert '"partial":true' in lines[-1]
    assert len(fake_provider.history[prompt]) == 1


async def test_deterministic_request_is_cached(
    http: httpx.AsyncClient, fake_provider: FakeOpenAI
) -> None:
    prompt = f"test-{uuid.uuid4().hex}"
    body = chat("fake-ok", prompt, temperature=0)
    first = await http.post("/v1/chat/completions", json=body)
    second = await http.post("/v1/chat/completions", json=body)
    assert first.headers["x-switchyard-cache"] == "miss"
    assert second.headers["x-switchyard-cache"] == "hit"
    assert second.json()["choices"][0]["message"]["content"] == OK_TEXT
    assert second.json()["usage"] == first.json()["usage"]
    async with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.headers["x-switchyard-cache"] == "hit"
        lines = [line async for line in r.aiter_lines() if line]
    # The first call was not streamed, so upstream answered whole: one delta, as stored, then
    # the finish chunk and [DONE].
    assert len(lines) == 3
    assert orjson.loads(lines[0][len("data: ") :])["choices"][0]["delta"]["content"] == OK_TEXT
    assert lines[-1] == "data: [DONE]"
    assert len(fake_provider.history[prompt]) == 1  # the provider saw one call in all


async def test_cache_rules(http: httpx.AsyncClient, fake_provider: FakeOpenAI) -> None:
    sampled = chat("fake-ok", temperature=0.7)
    await http.post("/v1/chat/completions", json=sampled)
    again = await http.post("/v1/chat/completions", json=sampled)
    assert "x-switchyard-cache" not in again.headers  # not deterministic: not cached
    forced = chat("fake-ok", temperature=0.7)
    await http.post("/v1/chat/completions", json=forced, headers={"x-switchyard-cache": "on"})
    hit = await http.post("/v1/chat/completions", json=forced, headers={"x-switchyard-cache": "on"})
    assert hit.headers["x-switchyard-cache"] == "hit"
    bad = await http.post(
        "/v1/chat/completions", json=forced, headers={"x-switchyard-cache": "maybe"}
    )
    assert bad.status_code == 400


async def test_degraded_model_answers_when_every_deployment_fails(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/chat/completions", json=chat("degrade-me"))
    assert response.status_code == 200
    assert response.headers["x-switchyard-degraded"] == "fallback_model"
    body = response.json()
    assert body["degraded"] == ["fallback_model"]
    assert body["model"] == "fake-ok"
    assert body["choices"][0]["message"]["content"] == OK_TEXT


async def test_cached_answer_serves_when_every_deployment_fails(
    http: httpx.AsyncClient, fake_provider: FakeOpenAI
) -> None:
    prompt = f"test-{uuid.uuid4().hex}"
    fake_provider.modes["cache-fallback-mode"] = "ok"
    fresh = await http.post(
        "/v1/chat/completions", json=chat("cache-fallback", prompt, temperature=0)
    )
    assert fresh.status_code == 200
    fake_provider.modes["cache-fallback-mode"] = "unavailable"
    degraded = await http.post(
        "/v1/chat/completions", json=chat("cache-fallback", prompt, temperature=0.9)
    )
    assert degraded.status_code == 200
    assert degraded.headers["x-switchyard-degraded"] == "cache"
    assert degraded.json()["choices"][0]["message"]["content"] == OK_TEXT
    nothing = await http.post("/v1/chat/completions", json=chat("cache-fallback", temperature=0.9))
    assert nothing.status_code == 503  # no cached answer for that conversation


async def test_usage_and_cost_are_published(
    http: httpx.AsyncClient, nats_server: NatsServer
) -> None:
    events: list[UsageEvent] = []

    async def collect(msg: Msg) -> None:
        events.append(UsageEvent.model_validate_json(msg.data))

    nc = await nats.connect(nats_server.url)
    await nc.subscribe(subjects.EVENTS_USAGE, cb=collect)
    await settled(nc)
    try:
        response = await http.post("/v1/chat/completions", json=chat("priced"))
        request_id = response.headers["x-request-id"]
        for _ in range(50):
            if any(e.request_id == request_id for e in events):
                break
            await asyncio.sleep(0.05)
    finally:
        await nc.drain()
    usage = response.json()["usage"]
    completion = len(OK_TEXT.split(" "))  # the fake reports 7 prompt tokens and one per word
    expected_cost = (7 * 2.0 + completion * 10.0) / 1_000_000
    assert usage["cost_usd"] == pytest.approx(expected_cost)
    event = next(e for e in events if e.request_id == request_id)
    assert event.tenant_id == "tenant-test"
    assert event.model == "priced"
    assert event.deployment == "priced#0"
    assert event.outcome == "ok"
    assert event.usage.total_tokens == 7 + completion
    assert event.usage.cost_usd == pytest.approx(expected_cost)
    assert event.attempts == 1
    assert event.first_token_ms is not None
    assert event.latency_ms >= event.first_token_ms


async def test_deployment_health_is_for_admins_only(http: httpx.AsyncClient) -> None:
    admin = (await http.get("/v1/models")).json()["data"]
    other = (await http.get("/v1/models", headers={"authorization": f"Bearer {OTHER_KEY}"})).json()
    assert all("deployments" in card for card in admin)
    assert not any("deployments" in card for card in other["data"])
    assert {c["id"] for c in admin} == {c["id"] for c in other["data"]}


@pytest.fixture
def metered(tmp_path: Path, fake_provider: FakeOpenAI) -> Iterator[tuple[PrivateStack, int]]:
    """A stack of its own whose inference serves Prometheus metrics."""
    port = free_port()
    models = {
        "metered": {
            "provider": "openai",
            "base_url": fake_provider.base_url,
            "upstream_model": "ok",
        }
    }
    env = {"SWITCHYARD_INFERENCE_METRICS_PORT": str(port)}
    with private_stack(tmp_path, models=models, inference_env=env) as stack:
        yield stack, port


async def test_breaker_state_is_a_metric(
    metered: tuple[PrivateStack, int], anonymous: httpx.AsyncClient
) -> None:
    stack, port = metered
    url = f"{stack.base_url}/v1/chat/completions"
    response = await anonymous.post(url, json=chat("metered"), headers=stack.headers)
    assert response.status_code == 200
    for name in ("no-such-model-1", "no-such-model-2"):
        missing = await anonymous.post(url, json=chat(name), headers=stack.headers)
        assert missing.status_code == 404
    metrics = (await anonymous.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'switchyard_deployment_breaker_state{deployment="metered#0"} 0.0' in metrics
    assert 'switchyard_upstream_attempts_total{deployment="metered#0",outcome="ok"} 1.0' in metrics
    assert 'switchyard_generations_total{model="metered",outcome="ok"} 1.0' in metrics
    # Model names clients make up share one series (no unbounded label values).
    unknown = 'switchyard_generations_total{model="(unknown)",outcome="model_not_found"} 2.0'
    assert unknown in metrics
    assert "no-such-model" not in metrics


async def test_expired_request_is_never_sent_upstream(
    stack: Stack, nats_server: NatsServer, fake_provider: FakeOpenAI
) -> None:
    prompt = f"test-{uuid.uuid4().hex}"
    message = ChatRequestMessage(
        request_id=uuid.uuid4().hex,
        tenant_id="tenant-test",
        deadline=deadline_in(-1),  # already past when it arrives
        body=ChatCompletionRequest.model_validate(chat("fake-ok", prompt)),
    )
    nc = await nats.connect(nats_server.url)
    try:
        reply = await nc.request(subjects.CHAT, message.model_dump_json().encode(), timeout=5)
    finally:
        await nc.drain()
    answer = STREAM_MESSAGE.validate_json(reply.data)
    assert isinstance(answer, StreamError)
    assert answer.error.code == ErrorCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.2)
    assert prompt not in fake_provider.history


@pytest.mark.parametrize(
    ("subject", "payload"),
    [
        (subjects.CHAT, b"{not json"),
        (subjects.CHAT, b'{"request_id": "r1", "tenant_id": "t"}'),  # no deadline, no body
        (subjects.COMPLETION, b"[]"),
    ],
)
async def test_invalid_request_message_gets_a_structured_error(
    stack: Stack, nats_server: NatsServer, subject: str, payload: bytes
) -> None:
    """Inference answers a malformed message on its hot subjects with `invalid_request` (and
    goes on serving: the next valid request still gets its answer)."""
    nc = await nats.connect(nats_server.url)
    try:
        reply = await nc.request(subject, payload, timeout=5)
        answer = STREAM_MESSAGE.validate_json(reply.data)
        assert isinstance(answer, StreamError)
        assert answer.error.code == ErrorCode.INVALID_REQUEST
        assert answer.error.details["errors"]  # what was wrong, field by field
        message = ChatRequestMessage(
            request_id=uuid.uuid4().hex,
            tenant_id="tenant-test",
            deadline=deadline_in(-1),
            body=ChatCompletionRequest.model_validate(chat("fake-ok")),
        )
        after = await nc.request(subjects.CHAT, message.model_dump_json().encode(), timeout=5)
        assert STREAM_MESSAGE.validate_json(after.data).type == "error"
    finally:
        await nc.drain()
