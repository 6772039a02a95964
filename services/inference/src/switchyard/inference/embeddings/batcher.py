"""Micro-batching: concurrent small requests share one call of a blocking batch function.

An embedding model encodes 32 texts in little more time than one, so requests that arrive within
a few milliseconds of each other are gathered and encoded together. The first request of a batch
waits at most `max_wait` seconds for company (or until `max_batch` inputs are waiting); requests
that arrive while a batch is encoding go into the next one without further waiting. The blocking
function runs on one dedicated thread, never on the event loop, and the results are split back so
each caller gets exactly its own, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from switchyard.contracts import ErrorCode, SwitchyardError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Waiting(Generic[T]):
    texts: list[str]
    future: asyncio.Future[list[T]]
    arrived: float = field(default=0.0)


class MicroBatcher(Generic[T]):
    """Gathers concurrent `submit` calls into single calls of `encode` on a dedicated thread.

    Args:
        encode: a blocking function that maps a list of texts to one result per text, in order.
        max_batch: most inputs gathered into one call (a single larger request still runs whole).
        max_wait: seconds the oldest waiting request may wait for others before its batch runs.
        max_queue: inputs that may wait; a request that would exceed it is refused (`overloaded`).
        name: thread name prefix, for thread dumps and profiles.
    """

    def __init__(
        self,
        encode: Callable[[list[str]], Sequence[T]],
        *,
        max_batch: int,
        max_wait: float,
        max_queue: int,
        name: str = "embed",
    ) -> None:
        self._encode = encode
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._max_queue = max_queue
        self._waiting: deque[_Waiting[T]] = deque()
        self._queued = 0
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.calls = 0
        """How many times `encode` has been called (for metrics and tests)."""

    async def run(self, work: Callable[[], R]) -> R:
        """Run `work` on the batcher's thread (e.g. loading the model the thread will use)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def submit(self, texts: list[str]) -> list[T]:
        """Encode `texts` as part of the next batch; one result per text, in order.

        Raises:
            SwitchyardError: `overloaded` when the queue is full, `service_unavailable` once
                closed, `provider_error` when `encode` fails.
        """
        if self._closed:
            raise SwitchyardError(ErrorCode.SERVICE_UNAVAILABLE, "the embedding model is closed")
        if self._queued and self._queued + len(texts) > self._max_queue:
            raise SwitchyardError(
                ErrorCode.OVERLOADED, f"embedding queue full: {self._queued} inputs waiting"
            )
        loop = asyncio.get_running_loop()
        waiting = _Waiting[T](texts, loop.create_future(), loop.time())
        self._waiting.append(waiting)
        self._queued += len(texts)
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="micro-batcher")
        # A cancelled caller (deadline, shutdown) cancels its future; the worker then skips it.
        return await waiting.future

    async def aclose(self) -> None:
        """Refuse new work, fail what waits, and let the thread go."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._waiting:
            self._fail([self._waiting.popleft()], ErrorCode.SERVICE_UNAVAILABLE, "shutting down")
        self._queued = 0
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                while self._waiting:
                    await self._gather(loop)
                    batch = self._take()
                    if batch:
                        await self._encode_batch(loop, batch)
        except Exception:
            # Never leave callers waiting on a dead worker; the next `submit` starts a new one.
            log.exception("micro-batcher worker failed")
            self._fail(list(self._waiting), ErrorCode.INTERNAL_ERROR, "embedding batcher failed")
            self._waiting.clear()
            self._queued = 0

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until a full batch is waiting or the oldest request has waited `max_wait`."""
        oldest = self._waiting[0].arrived
        while self._queued < self._max_batch:
            remaining = oldest + self._max_wait - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                return

    def _take(self) -> list[_Waiting[T]]:
        """Pop whole requests, oldest first, while they fit in one batch (at least one)."""
        batch: list[_Waiting[T]] = []
        size = 0
        while self._waiting:
            head = self._waiting[0]
            if not head.future.done() and batch and size + len(head.texts) > self._max_batch:
                break
            self._waiting.popleft()
            self._queued -= len(head.texts)
            if not head.future.done():  # its caller gave up (deadline, cancel): skip it
                batch.append(head)
                size += len(head.texts)
        return batch

    async def _encode_batch(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting[T]]
    ) -> None:
        texts = [text for waiting in batch for text in waiting.texts]
        self.calls += 1
        try:
            results = await loop.run_in_executor(self._executor, self._encode, texts)
            if len(results) != len(texts):
                raise ValueError(f"{len(results)} results for {len(texts)} inputs")
        except asyncio.CancelledError:
            self._fail(batch, ErrorCode.SERVICE_UNAVAILABLE, "shutting down")
            raise
        except Exception as exc:
            log.exception("embedding batch of %d inputs failed", len(texts))
            self._fail(batch, ErrorCode.PROVIDER_ERROR, f"local embedding model failed: {exc}")
            return
        start = 0
        for waiting in batch:
            end = start + len(waiting.texts)
            if not waiting.future.done():
                waiting.future.set_result(list(results[start:end]))
            start = end

    @staticmethod
    def _fail(batch: list[_Waiting[T]], code: ErrorCode, message: str) -> None:
        for waiting in batch:
            if not waiting.future.done():
                waiting.future.set_exception(SwitchyardError(code, message))
