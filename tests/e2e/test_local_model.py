"""The embedded local model (SmolLM2-135M-Instruct via llama.cpp) through the whole suite."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai

LOCAL = "smollm2-135m-instruct"


async def test_local_model_answers(client: openai.AsyncOpenAI) -> None:
    result = await client.chat.completions.create(
        model=LOCAL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    text = result.choices[0].message.content
    assert text is not None
    assert text.strip()
    assert result.usage is not None
    assert 0 < result.usage.completion_tokens <= 16
    assert result.usage.prompt_tokens > 0


async def test_local_model_streams(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=LOCAL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=12,
        stream=True,
    )
    pieces = [
        c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 2  # token by token, not one blob
    assert "".join(pieces).strip()


async def test_local_text_completion(client: openai.AsyncOpenAI) -> None:
    result = await client.completions.create(model=LOCAL, prompt="Once upon a time", max_tokens=8)
    assert result.choices[0].text.strip()


async def test_generations_do_not_block_other_requests(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    async def generate() -> float:
        started = time.monotonic()
        await client.chat.completions.create(
            model=LOCAL,
            messages=[{"role": "user", "content": "Write a long story about a dragon."}],
            max_tokens=120,
            temperature=0.7,
        )
        return time.monotonic() - started

    generations = [asyncio.create_task(generate()) for _ in range(2)]
    await asyncio.sleep(0.3)  # both are admitted and generating (one runs, one waits its turn)
    started = time.monotonic()
    response = await http.get("/v1/models")
    models_latency = time.monotonic() - started
    assert response.status_code == 200
    assert not any(task.done() for task in generations), (
        "generations ended too soon to prove anything"
    )
    durations = await asyncio.gather(*generations)
    assert models_latency < 0.5, f"/v1/models took {models_latency:.2f}s during generation"
    assert min(durations) > models_latency * 2
