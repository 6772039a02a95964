"""One request is one trace: the gateway's trace context travels in NATS headers to inference."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from tests.conftest import Stack


async def inference_log_entry(stack: Stack, request_id: str, msg: str) -> dict[str, object]:
    for _ in range(50):
        text = await asyncio.to_thread(stack.inference.log_text)
        for line in text.splitlines():
            if request_id in line and msg in line:
                entry: dict[str, object] = json.loads(line)
                return entry
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {msg!r} log line for {request_id}")


async def test_trace_id_crosses_nats(http: httpx.AsyncClient, stack: Stack) -> None:
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "fake-ok", "messages": [{"role": "user", "content": uuid.uuid4().hex}]},
    )
    assert response.status_code == 200
    trace_id = response.headers["x-trace-id"]
    assert len(trace_id) == 32
    entry = await inference_log_entry(stack, response.headers["x-request-id"], "generation done")
    assert entry["trace_id"] == trace_id
    assert entry["service"] == "inference"


async def test_client_traceparent_is_honoured(http: httpx.AsyncClient, stack: Stack) -> None:
    trace_id = uuid.uuid4().hex
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "fake-ok", "messages": [{"role": "user", "content": uuid.uuid4().hex}]},
        headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
    )
    assert response.headers["x-trace-id"] == trace_id
    entry = await inference_log_entry(stack, response.headers["x-request-id"], "generation done")
    assert entry["trace_id"] == trace_id
