"""The generation lifecycle: resolve the model, stream from its provider, publish the reply stream.

Each request runs as its own task, so a long generation never holds up the subscription. The
time-to-first-token, idle and absolute deadlines are enforced here for every provider alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import Literal

from nats.aio.client import Client
from opentelemetry import trace
from opentelemetry.context import Context

from switchyard.contracts import (
    ChatRequestMessage,
    CompletionRequestMessage,
    Delta,
    Envelope,
    ErrorBody,
    ErrorCode,
    ModelCard,
    StreamChunk,
    StreamDone,
    StreamError,
    SwitchyardError,
)
from switchyard.inference.config import ModelEntry
from switchyard.inference.providers.base import Finish, Provider, ProviderEvent
from switchyard.runtime.logging import request_id_var

log = logging.getLogger(__name__)
tracer = trace.get_tracer("switchyard.inference")

RequestMessage = ChatRequestMessage | CompletionRequestMessage
StopReason = Literal["cancelled", "shutdown"]


class ModelTable:
    """Public model names and how each is served."""

    def __init__(self, entries: dict[str, ModelEntry], default: str | None = None) -> None:
        if not entries:
            raise ValueError("the model table is empty")
        default = default or next(iter(entries))
        if default not in entries:
            raise ValueError(f"default model {default!r} is not in the model table")
        self._entries = entries
        self.default = default

    def resolve(self, name: str) -> tuple[str, ModelEntry]:
        """The entry for `name` (`default` names the default model)."""
        if name == "default":
            name = self.default
        entry = self._entries.get(name)
        if entry is None:
            raise SwitchyardError(
                ErrorCode.MODEL_NOT_FOUND,
                f"The model '{name}' does not exist. See GET /v1/models for the models available.",
                model=name,
            )
        return name, entry

    def cards(self) -> list[ModelCard]:
        """What `GET /v1/models` lists."""
        return [
            ModelCard(id=name, owned_by=entry.provider) for name, entry in self._entries.items()
        ]


class Generations:
    """Runs and tracks the generations of this replica; cancels them on request or shutdown."""

    def __init__(
        self, nc: Client, models: ModelTable, providers: dict[str, Provider], max_inflight: int
    ) -> None:
        self._nc = nc
        self._models = models
        self._providers = providers
        self._max_inflight = max_inflight
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop_reasons: dict[str, StopReason] = {}
        self._accepting = True
        self._background: set[asyncio.Task[None]] = set()

    @property
    def inflight(self) -> int:
        """Generations running now."""
        return len(self._tasks)

    def start(self, message: RequestMessage, reply: str, context: Context | None = None) -> None:
        """Begin a generation whose stream goes to `reply` (as part of the trace in `context`)."""
        rid = message.request_id
        if not self._accepting:
            self._reply_error(
                message, reply, ErrorCode.SERVICE_UNAVAILABLE, "inference is shutting down"
            )
        elif message.expired():
            self._reply_error(
                message, reply, ErrorCode.DEADLINE_EXCEEDED, "deadline passed before start"
            )
        elif rid in self._tasks:
            self._reply_error(
                message, reply, ErrorCode.CONFLICT, f"request {rid} is already running"
            )
        elif len(self._tasks) >= self._max_inflight:
            self._reply_error(
                message, reply, ErrorCode.OVERLOADED, "too many generations in flight"
            )
        else:
            task = asyncio.create_task(self._traced(message, reply, context), name=f"gen-{rid}")
            self._tasks[rid] = task
            task.add_done_callback(lambda _t: self._forget(rid))

    def _forget(self, rid: str) -> None:
        self._tasks.pop(rid, None)
        self._stop_reasons.pop(rid, None)

    def cancel(self, request_id: str, reason: StopReason = "cancelled") -> bool:
        """Stop a running generation; returns whether this replica was running it."""
        task = self._tasks.get(request_id)
        if task is None:
            return False
        self._stop_reasons[request_id] = reason
        task.cancel()
        return True

    async def drain(self, timeout: float) -> None:
        """Stop accepting; let running generations finish for `timeout` s, then cancel the rest."""
        self._accepting = False
        if self._tasks:
            log.info("draining %d generations", len(self._tasks))
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)
        for rid in list(self._tasks):
            self.cancel(rid, "shutdown")
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=2)

    def _reply_error(self, message: Envelope, reply: str, code: ErrorCode, text: str) -> None:
        error = StreamError(
            **message.header(),
            seq=0,
            error=ErrorBody.of(code, text),
        )
        task = asyncio.create_task(self._publish(reply, error))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(self, reply: str, message: StreamChunk | StreamDone | StreamError) -> None:
        await self._nc.publish(reply, message.model_dump_json().encode())

    def _stream(
        self, message: RequestMessage, name: str, entry: ModelEntry
    ) -> AsyncGenerator[ProviderEvent, None]:
        provider = self._providers.get(entry.provider)
        if provider is None:
            raise SwitchyardError(
                ErrorCode.SERVICE_UNAVAILABLE, f"provider {entry.provider!r} is not enabled here"
            )
        body = message.body.model_copy(update={"model": name})
        if isinstance(message, ChatRequestMessage):
            return provider.chat(body, entry)  # type: ignore[arg-type]
        return provider.complete(body, entry)  # type: ignore[arg-type]

    async def _traced(self, message: RequestMessage, reply: str, context: Context | None) -> None:
        request_id_var.set(message.request_id)
        with tracer.start_as_current_span(
            "generate",
            context=context,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "switchyard.request_id": message.request_id,
                "gen_ai.request.model": message.body.model,
            },
        ):
            await self._run(message, reply)

    async def _run(self, message: RequestMessage, reply: str) -> None:
        head = message.header()
        seq = 0
        started = time.monotonic()
        try:
            deadline = asyncio.get_running_loop().time() + message.remaining()
            async with asyncio.timeout_at(deadline):
                name, entry = self._models.resolve(message.body.model)
                stream = self._stream(message, name, entry)
                async with contextlib.aclosing(stream):
                    while True:
                        limit = entry.first_token_timeout if seq == 0 else entry.idle_timeout
                        try:
                            async with asyncio.timeout(limit):
                                event = await anext(stream)
                        except TimeoutError:
                            what = "first token" if seq == 0 else "next chunk"
                            raise SwitchyardError(
                                ErrorCode.PROVIDER_TIMEOUT,
                                f"model {name!r} sent no {what} within {limit:g}s",
                                timeout=limit,
                            ) from None
                        except StopAsyncIteration:
                            raise SwitchyardError(
                                ErrorCode.PROVIDER_ERROR, "provider stream ended without finishing"
                            ) from None
                        if isinstance(event, Finish):
                            await self._publish(
                                reply,
                                StreamDone(
                                    **head,
                                    seq=seq,
                                    model=name,
                                    finish_reason=event.finish_reason,
                                    usage=event.usage,
                                ),
                            )
                            log.info(
                                "generation done",
                                extra={
                                    "model": name,
                                    "chunks": seq,
                                    "ms": round((time.monotonic() - started) * 1000, 1),
                                },
                            )
                            return
                        await self._publish(
                            reply, StreamChunk(**head, seq=seq, model=name, delta=_role(event, seq))
                        )
                        seq += 1
        except asyncio.CancelledError:
            reason = self._stop_reasons.get(message.request_id, "cancelled")
            log.info("generation stopped", extra={"reason": reason, "chunks": seq})
            code = ErrorCode.CANCELLED if reason == "cancelled" else ErrorCode.SERVICE_UNAVAILABLE
            error = ErrorBody.of(code, f"generation stopped: {reason}")
        except SwitchyardError as exc:
            log.warning("generation failed: %s", exc.body.message, extra={"code": exc.code})
            error = exc.body
        except TimeoutError:
            error = ErrorBody.of(ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed")
        except Exception:
            log.exception("generation crashed")
            error = ErrorBody.of(ErrorCode.INTERNAL_ERROR, "internal error in inference")
        with contextlib.suppress(Exception):
            await self._publish(reply, StreamError(**head, seq=seq, error=error, partial=seq > 0))


def _role(delta: Delta, seq: int) -> Delta:
    """The first chunk of an answer carries the assistant role, as in OpenAI streams."""
    if seq == 0 and delta.role is None:
        return delta.model_copy(update={"role": "assistant"})
    return delta
