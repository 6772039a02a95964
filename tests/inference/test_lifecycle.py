"""Inference under pressure: a bounded local queue, and SIGTERM in the middle of a stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import model_table
from tests.support.fake_openai import FakeOpenAI
from tests.support.stacks import PrivateStack, private_stack


async def test_local_queue_is_bounded(http: httpx.AsyncClient) -> None:
    """One worker and eight waiting places: a burst of 14 gets some fast `overloaded` 503s."""

    async def ask() -> httpx.Response:
        return await http.post(
            "/v1/chat/completions",
            json={
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "Count to twenty."}],
                "max_tokens": 24,
            },
        )

    responses = await asyncio.gather(*(ask() for _ in range(14)))
    statuses = sorted(r.status_code for r in responses)
    refused = [r for r in responses if r.status_code != 200]
    assert refused, statuses
    assert statuses.count(200) >= 9
    for response in refused:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "overloaded"


@pytest.fixture
def draining_stack(tmp_path: Path, fake_provider: FakeOpenAI) -> Iterator[PrivateStack]:
    models = {"fake-trickle": model_table(fake_provider)["fake-trickle"]}
    with private_stack(
        tmp_path, models=models, inference_env={"SWITCHYARD_INFERENCE_SHUTDOWN_TIMEOUT": "1"}
    ) as stack:
        yield stack


async def test_sigterm_mid_stream_drains_then_ends_stream_with_error(
    draining_stack: PrivateStack, fake_provider: FakeOpenAI
) -> None:
    assert draining_stack.inference is not None
    prompt = f"test-{uuid.uuid4().hex}"
    body = {
        "model": "fake-trickle",
        "stream": True,
        "messages": [{"role": "user", "content": prompt}],
    }
    lines: list[str] = []
    async with (
        httpx.AsyncClient(base_url=draining_stack.base_url, headers=draining_stack.headers) as http,
        http.stream("POST", "/v1/chat/completions", json=body, timeout=20) as response,
    ):
        assert response.status_code == 200
        stopped = 0.0
        async for line in response.aiter_lines():
            if not line:
                continue
            lines.append(line)
            if len(lines) == 3:
                draining_stack.inference.proc.terminate()  # one SIGTERM, by PID
                stopped = time.monotonic()
    ended = time.monotonic()
    code = await asyncio.to_thread(draining_stack.inference.proc.wait, 10)
    assert code == 0
    assert '"code":"service_unavailable"' in lines[-1]  # the stream ends with an error event...
    assert '"partial":true' in lines[-1]
    assert "data: [DONE]" not in lines
    assert 0.8 <= ended - stopped < 5  # ...after the 1 s drain bound, not a hang
    call = fake_provider.calls[prompt]
    assert call.closed_at is not None  # the upstream stream was closed too
