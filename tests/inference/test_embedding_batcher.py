"""The micro-batcher in-process: concurrent requests share encode calls, each gets its own results.

The first tests drive the batcher with a plain function (so calls and batch sizes can be counted
exactly); the last ones drive the real local embedding model through it.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator

import pytest

from switchyard.contracts import SwitchyardError
from switchyard.inference.embeddings.batcher import MicroBatcher
from switchyard.inference.embeddings.local import LocalEmbedder, minilm_path


class Recorder:
    """A blocking batch function that remembers each batch and the thread it ran on."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self._delay = delay
        self._fail = fail
        self._ran = threading.Event()

    def __call__(self, texts: list[str]) -> list[str]:
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if self._delay:
            self._ran.wait(self._delay)  # stands in for the model's compute time
        if self._fail:
            raise RuntimeError("the model broke")
        return [f"vec({text})" for text in texts]


async def test_concurrent_requests_share_encode_calls() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=64, max_wait=0.02, max_queue=1000)
    try:
        requests = [[f"r{i}-a", f"r{i}-b"] if i % 3 == 0 else [f"r{i}"] for i in range(20)]
        results = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
    finally:
        await batcher.aclose()
    for texts, result in zip(requests, results, strict=True):
        assert result == [f"vec({text})" for text in texts]  # each caller: its own, in order
    assert batcher.calls == len(recorder.batches)
    assert batcher.calls < len(requests)
    assert batcher.calls == 1  # all 20 arrived within the wait window, 27 inputs < 64
    assert recorder.threads != {threading.current_thread().name}  # never on the event loop


async def test_batches_respect_max_batch_and_keep_requests_whole() -> None:
    recorder = Recorder(delay=0.01)
    batcher = MicroBatcher(recorder, max_batch=8, max_wait=0.02, max_queue=1000)
    try:
        requests = [[f"r{i}-{j}" for j in range(3)] for i in range(10)]
        results = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
    finally:
        await batcher.aclose()
    assert [r[0] for r in results] == [f"vec(r{i}-0)" for i in range(10)]
    assert all(len(batch) <= 8 for batch in recorder.batches)
    assert all(len(batch) % 3 == 0 for batch in recorder.batches)  # no request split in two
    assert 4 <= batcher.calls < 10


async def test_a_lone_request_waits_no_longer_than_max_wait() -> None:
    batcher = MicroBatcher(Recorder(), max_batch=64, max_wait=0.05, max_queue=100)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        assert await batcher.submit(["alone"]) == ["vec(alone)"]
        assert loop.time() - started < 0.5
    finally:
        await batcher.aclose()


async def test_a_cancelled_caller_is_skipped_and_others_are_served() -> None:
    recorder = Recorder(delay=0.1)
    batcher = MicroBatcher(recorder, max_batch=1, max_wait=0, max_queue=100)
    try:
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.sleep(0.02)  # "first" is encoding; the next two wait their turn
        doomed = asyncio.ensure_future(batcher.submit(["doomed"]))
        kept = asyncio.ensure_future(batcher.submit(["kept"]))
        await asyncio.sleep(0)
        doomed.cancel()
        assert await first == ["vec(first)"]
        assert await kept == ["vec(kept)"]
    finally:
        await batcher.aclose()
    assert ["doomed"] not in recorder.batches


async def test_a_failing_encode_fails_its_batch_with_a_structured_error() -> None:
    batcher = MicroBatcher(Recorder(fail=True), max_batch=8, max_wait=0.01, max_queue=100)
    try:
        results = await asyncio.gather(
            batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True
        )
    finally:
        await batcher.aclose()
    for result in results:
        assert isinstance(result, SwitchyardError)
        assert result.code == "provider_error"


async def test_a_full_queue_refuses_with_overloaded() -> None:
    batcher = MicroBatcher(Recorder(delay=0.2), max_batch=2, max_wait=0, max_queue=4)
    try:
        running = asyncio.ensure_future(batcher.submit(["a", "b"]))
        await asyncio.sleep(0.02)
        waiting = asyncio.ensure_future(batcher.submit(["c", "d", "e"]))
        await asyncio.sleep(0)
        with pytest.raises(SwitchyardError) as refused:
            await batcher.submit(["f", "g"])
        assert refused.value.code == "overloaded"
        assert len(await running) == 2
        assert len(await waiting) == 3
    finally:
        await batcher.aclose()


@pytest.fixture(scope="module")
async def minilm() -> AsyncIterator[LocalEmbedder]:
    """The real local embedding model (loaded once for the module)."""
    embedder = LocalEmbedder(minilm_path(), threads=2, max_batch=64, max_wait=0.01, max_queue=512)
    await embedder.load()
    yield embedder
    await embedder.aclose()


async def test_local_model_batches_concurrent_requests(minilm: LocalEmbedder) -> None:
    texts = [f"sentence number {i} about {topic}" for i, topic in enumerate("abcdefghijkl")]
    alone = [await minilm.embed([text]) for text in texts]  # one call each, as a reference
    before = minilm.batcher.calls
    together = await asyncio.gather(*(minilm.embed([text]) for text in texts))
    calls = minilm.batcher.calls - before
    assert calls < len(texts), f"{calls} encode calls for {len(texts)} concurrent requests"
    for single, batched in zip(alone, together, strict=True):
        assert len(batched.vectors) == 1
        assert batched.prompt_tokens == single.prompt_tokens > 0
        cosine = sum(a * b for a, b in zip(single.vectors[0], batched.vectors[0], strict=True))
        assert cosine > 0.9999  # the caller's own vector (batching pads, it does not mix)
    assert minilm.dimensions == 384
    assert math.isclose(sum(x * x for x in together[0].vectors[0]), 1.0, rel_tol=1e-4)
