"""The generation lifecycle: resolve the model, answer from cache or from its deployments (with
bounded retries, breakers and fallbacks), publish the reply stream, account for usage.

Each request runs as its own task, so a long generation never holds up the subscription. The
time-to-first-token, idle and absolute deadlines are enforced here for every provider alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
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
    StreamError,
    SwitchyardError,
    Usage,
    subjects,
)
from switchyard.contracts.messages import CacheStatus
from switchyard.contracts.openai import SystemMessage
from switchyard.contracts.retrieval import Citation, RagOptions, SearchHit
from switchyard.inference.cache import CachedAnswer, ResponseCache, cache_key, cacheable
from switchyard.inference.config import Deployment, ModelEntry
from switchyard.inference.embeddings.models import check_kind
from switchyard.inference.metrics import COUNT_GENERATIONS, COUNT_UPSTREAM_ATTEMPTS
from switchyard.inference.providers.base import Finish, Provider, ProviderEvent
from switchyard.inference.resilience import (
    FALLBACK,
    RETRYABLE,
    UNHEALTHY,
    backoff_delay,
    parse_retry_after,
)
from switchyard.inference.retriever import Retriever
from switchyard.inference.routing import DeploymentState, Router
from switchyard.runtime.hotpath import HotPath, Publish
from switchyard.runtime.lifecycle import Background
from switchyard.runtime.logging import log_info, request_id_var
from switchyard.runtime.telemetry import current_span
from switchyard.runtime.timers import IdleTimeout

log = logging.getLogger(__name__)
tracer = trace.get_tracer("switchyard.inference")
UNKNOWN_MODEL = "(unknown)"  # the metrics label of a model name not in the model table

RequestMessage = ChatRequestMessage | CompletionRequestMessage
StopReason = Literal["cancelled", "shutdown"]


class ModelTable:
    """Public model names and how each is served."""

    def __init__(self, entries: dict[str, ModelEntry], default: str | None = None) -> None:
        if not entries:
            raise ValueError("the model table is empty")
        chat_models = [name for name, entry in entries.items() if entry.kind == "chat"]
        default = default or (chat_models[0] if chat_models else next(iter(entries)))
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

    def cards(self, router: Router) -> list[ModelCard]:
        """What `GET /v1/models` lists, with each deployment's health (the gateway shows it to
        admins only)."""
        return [
            ModelCard.model_validate(
                {
                    "id": name,
                    "owned_by": entry.deployments[0].provider,
                    "deployments": router.health(entry),
                }
            )
            for name, entry in self._entries.items()
        ]


@dataclass
class Outcome:
    """What one request did, for the usage event and logs."""

    deployment: Deployment | None = None
    attempts: int = 0
    first_token_at: float | None = None
    usage: Usage = field(default_factory=Usage)


class ReplyWriter:
    """Publishes one reply stream: chunks with `seq` 0, 1, 2 … then one terminal message."""

    def __init__(
        self, publish: Publish, reply: str, message: Envelope, *, batch: bool = False
    ) -> None:
        self._publish = publish
        self._reply = reply
        self._head = message.header()
        self._batch = batch  # the requester reads several fragments per chunk message
        self.seq = 0
        self.deltas: list[Delta] = []
        self.cache: CacheStatus | None = None
        self.degraded: list[str] = []
        self.citations: list[Citation] | None = None
        # `{"request_id":…,"tenant_id":…,"deadline":…` — the start of every message.
        self._prefix = orjson.dumps(self._head)[:-1]
        self._tail: list[Delta] | None = None

    @property
    def started(self) -> bool:
        """Whether any chunk has gone out (after which nothing may be retried)."""
        return self.seq > 0

    async def chunk(self, model: str, delta: Delta) -> None:
        """Send one fragment (the first one also carries the cache and degraded marks)."""
        await self._send(model, delta, None)

    async def chunks(self, model: str, deltas: list[Delta]) -> None:
        """Send fragments that arrived together: one message if the requester batches."""
        if not deltas:
            return
        if self._batch:
            await self._send(model, deltas[0], deltas[1:] or None)
            return
        for delta in deltas:
            await self._send(model, delta, None)

    async def last(self, model: str, deltas: list[Delta]) -> None:
        """The answer's last fragments, which came with its end: they travel in the `done`
        message if the requester batches (a short answer is then one message), else as chunks."""
        if not self._batch:
            await self.chunks(model, deltas)
        elif deltas:
            self._tail = deltas
            self.deltas.extend(deltas)

    async def _send(self, model: str, delta: Delta, more: list[Delta] | None) -> None:
        # The bytes StreamChunk would serialise to, built from the envelope encoded once
        # (pydantic would cost ~25 µs a message here); the reply-writer tests hold the two equal.
        if self.seq == 0:
            fields: dict[str, Any] = {
                "type": "chunk",
                "seq": 0,
                "model": model,
                "delta": _first_fragment(delta),
            }
            if more:
                fields["more"] = [d.as_dict() for d in more]
            payload = self.encode(self._marks(fields, citations=True))
        else:
            extra = b',"more":[%s]' % b",".join(map(_delta_json, more)) if more else b""
            payload = b'%s,"type":"chunk","seq":%d,"model":%s,"delta":%s%s}' % (
                self._prefix,
                self.seq,
                orjson.dumps(model),
                _delta_json(delta),
                extra,
            )
        self.deltas.append(delta)
        if more:
            self.deltas.extend(more)
        self.seq += 1
        await self._publish(self._reply, payload)

    async def done(self, model: str, finish: Finish) -> None:
        """End the stream successfully (with the fragments `last` kept back)."""
        tail, self._tail = self._tail, None
        fields: dict[str, Any] = {"type": "done", "seq": self.seq, "model": model}
        if tail:
            deltas = [d.as_dict() for d in tail]
            if self.seq == 0:
                deltas[0] = _first_fragment(tail[0])
            fields["deltas"] = deltas
        fields["finish_reason"] = finish.finish_reason
        fields["usage"] = finish.usage.model_dump(exclude_none=True)
        payload = self.encode(self._marks(fields, citations=self.seq == 0))
        await self._publish(self._reply, payload)

    def _marks(self, fields: dict[str, Any], *, citations: bool) -> dict[str, Any]:
        """`fields` with how the answer was made: cache status, degraded modes, sources."""
        if self.cache is not None:
            fields["cache"] = self.cache
        if self.degraded:
            fields["degraded"] = self.degraded
        if citations and self.citations is not None:
            # Whole: a citation's `title` may be null but must be there.
            fields["citations"] = [c.model_dump(mode="json") for c in self.citations]
        return fields

    def encode(self, fields: dict[str, Any]) -> bytes:
        """A message about this request: the envelope's fields, then `fields`."""
        return b"%s,%s" % (self._prefix, orjson.dumps(fields)[1:])

    async def error(self, error: ErrorBody) -> None:
        """End the stream with an error (`partial` when chunks went out)."""
        message = StreamError(**self._head, seq=self.seq, error=error, partial=self.started)
        await self._publish(self._reply, message.model_dump_json().encode())


def _delta_json(delta: Delta) -> bytes:
    return orjson.dumps(delta.as_dict())


def _first_fragment(delta: Delta) -> dict[str, Any]:
    """The answer's first fragment, which names the speaker."""
    fragment = delta.as_dict()
    fragment.setdefault("role", "assistant")
    return fragment


def _priced(usage: Usage, deployment: Deployment) -> Usage:
    if not (deployment.input_cost_per_mtok or deployment.output_cost_per_mtok):
        return usage
    cost = (
        usage.prompt_tokens * deployment.input_cost_per_mtok
        + usage.completion_tokens * deployment.output_cost_per_mtok
    ) / 1_000_000
    return usage.model_copy(update={"cost_usd": round(cost, 10)})


class Generations:
    """Runs and tracks the generations of this replica; cancels them on request or shutdown."""

    def __init__(
        self,
        nc: Client,
        models: ModelTable,
        providers: dict[str, Provider],
        router: Router,
        max_inflight: int,
        cache: ResponseCache | None = None,
        retriever: Retriever | None = None,
    ) -> None:
        self._nc = nc
        self._publish = HotPath.attach(nc).publish  # reply streams and usage events
        self._retriever = retriever or Retriever(nc, timeout=2.0)
        self._models = models
        self._providers = providers
        self._router = router
        self._cache = cache
        self._max_inflight = max_inflight
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop_reasons: dict[str, StopReason] = {}
        self._accepting = True
        self._background = Background()

    @property
    def inflight(self) -> int:
        """Generations running now."""
        return len(self._tasks)

    def start(self, message: RequestMessage, reply: str, context: Context | None = None) -> None:
        """Begin a generation whose stream goes to `reply` (as part of the trace in `context`)."""
        rid = message.request_id
        refusal: tuple[ErrorCode, str] | None = None
        if not self._accepting:
            refusal = (ErrorCode.SERVICE_UNAVAILABLE, "inference is shutting down")
        elif message.expired():
            refusal = (ErrorCode.DEADLINE_EXCEEDED, "deadline passed before start")
        elif rid in self._tasks:
            refusal = (ErrorCode.CONFLICT, f"request {rid} is already running")
        elif len(self._tasks) >= self._max_inflight:
            refusal = (ErrorCode.OVERLOADED, "too many generations in flight")
        if refusal is not None:
            writer = ReplyWriter(self._publish, reply, message)
            self._background.spawn(writer.error(ErrorBody.of(*refusal)))
            return
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

    def models(self) -> list[ModelCard]:
        """The model list with deployment health."""
        return self._models.cards(self._router)

    async def _traced(self, message: RequestMessage, reply: str, context: Context | None) -> None:
        request_id_var.set(message.request_id)
        with current_span(
            tracer,
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
        writer = ReplyWriter(self._publish, reply, message, batch=message.batch)
        outcome = Outcome()
        started = time.monotonic()
        model = message.body.model
        resolved = False
        error: ErrorBody | None = None
        try:
            deadline = asyncio.get_running_loop().time() + message.remaining()
            async with asyncio.timeout_at(deadline):
                model, entry = self._models.resolve(message.body.model)
                resolved = True
                check_kind(model, entry, "chat")
                await self._answer(message, writer, model, entry, outcome)
        except asyncio.CancelledError:
            reason = self._stop_reasons.get(message.request_id, "cancelled")
            code = ErrorCode.CANCELLED if reason == "cancelled" else ErrorCode.SERVICE_UNAVAILABLE
            error = ErrorBody.of(code, f"generation stopped: {reason}")
        except SwitchyardError as exc:
            error = exc.body
        except TimeoutError:
            error = ErrorBody.of(ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed")
        except Exception:
            log.exception("generation crashed")
            error = ErrorBody.of(ErrorCode.INTERNAL_ERROR, "internal error in inference")
        if error is not None:
            log.info("generation failed: %s", error.message, extra={"code": error.code.value})
            with contextlib.suppress(Exception):
                await writer.error(error)
        latency = time.monotonic() - started
        # A name the model table does not know is counted as such: clients choose the names.
        COUNT_GENERATIONS.inc(
            model if resolved else UNKNOWN_MODEL, "ok" if error is None else error.code.value
        )
        log_info(
            log,
            "generation done",
            {
                "model": model,
                "chunks": writer.seq,
                "ms": round(latency * 1000, 1),
                "attempts": outcome.attempts,
                "outcome": "ok" if error is None else error.code.value,
            },
        )
        # Right after the stream's end, before this task yields: both leave in one NATS write.
        await self._publish_usage(message, model, writer, outcome, error, started)

    async def _answer(
        self,
        message: RequestMessage,
        writer: ReplyWriter,
        model: str,
        entry: ModelEntry,
        outcome: Outcome,
    ) -> None:
        """Ground on retrieved sources if asked; serve from the cache, else from the model's
        deployments, else degrade."""
        grounded = False
        if isinstance(message, ChatRequestMessage) and message.body.rag is not None:
            message = await self._ground(message, message.body.rag, writer)
            grounded = True
        cache = self._cache
        # A grounded answer depends on the collections' current content: never reuse it.
        store = cache is not None and cacheable(message) and not grounded
        key = cache_key(message, model) if store else ""
        if cache is not None and store:
            cached = await cache.get(key)
            if cached is not None:
                writer.cache = "hit"
                await self._replay(writer, cached)
                return
            writer.cache = "miss"
        try:
            finish = await self._with_fallbacks(message, writer, model, entry, outcome)
        except SwitchyardError as exc:
            if writer.started or exc.code not in FALLBACK:
                raise
            degraded = await self._degrade(message, writer, model, entry, exc, outcome)
            if degraded is None:
                return  # answered from the cache
            model, finish = degraded
        if cache is not None and store and finish.finish_reason != "cancelled":
            answer = CachedAnswer(
                model=model,
                deltas=writer.deltas,
                finish_reason=finish.finish_reason,
                usage=finish.usage,
            )
            await cache.put([key, cache_key(message, model, loose=True)], answer)
        outcome.usage = finish.usage
        await writer.done(model, finish)

    async def _ground(
        self, message: ChatRequestMessage, rag: RagOptions, writer: ReplyWriter
    ) -> ChatRequestMessage:
        """Retrieve sources and put them, numbered, in a system message. If retrieval fails or
        misses its time, answer without them and mark the answer degraded."""
        query = _last_user_text(message)
        try:
            hits = await self._retriever.search(message, rag, query)
        except SwitchyardError as exc:
            if exc.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_REQUEST):
                raise  # the client named a collection that is not theirs, or a bad filter
            log.warning("retrieval failed, answering without context: %s", exc.body.message)
            writer.degraded.append("retrieval")
            return message
        writer.citations = [
            Citation(
                index=number,
                collection=collection,
                document_id=hit.document_id,
                external_id=hit.external_id,
                chunk_id=hit.chunk_id,
                title=hit.title,
                snippet=hit.text[:300],
                score=hit.score,
            )
            for number, (collection, hit) in enumerate(hits, start=1)
        ]
        return message.model_copy(
            update={
                "body": message.body.model_copy(update={"messages": _with_sources(message, hits)})
            }
        )

    async def _replay(self, writer: ReplyWriter, cached: CachedAnswer) -> None:
        if cached.deltas:
            await writer.last(cached.model, cached.deltas)
        await writer.done(cached.model, Finish(cached.finish_reason, cached.usage))

    async def _degrade(
        self,
        message: RequestMessage,
        writer: ReplyWriter,
        model: str,
        entry: ModelEntry,
        failure: SwitchyardError,
        outcome: Outcome,
    ) -> tuple[str, Finish] | None:
        """Every deployment failed: answer with the degraded model, or a cached answer."""
        if entry.degraded_model is not None:
            fallback, fallback_entry = self._models.resolve(entry.degraded_model)
            writer.degraded.append("fallback_model")
            log.warning("degrading %s to %s: %s", model, fallback, failure.body.message)
            finish = await self._with_fallbacks(message, writer, fallback, fallback_entry, outcome)
            return fallback, finish
        if self._cache is not None and message.cache != "off":
            cached = await self._cache.get(cache_key(message, model, loose=True))
            if cached is not None:
                writer.degraded.append("cache")
                writer.cache = "hit"
                log.warning("answering %s from cache: %s", model, failure.body.message)
                await self._replay(writer, cached)
                return None
        raise failure

    async def _with_fallbacks(
        self,
        message: RequestMessage,
        writer: ReplyWriter,
        model: str,
        entry: ModelEntry,
        outcome: Outcome,
    ) -> Finish:
        """Try the model's deployments in order, with bounded retries on each."""
        last: SwitchyardError | None = None
        for state in self._router.plan(entry):
            if state.saturated:
                last = SwitchyardError(
                    ErrorCode.OVERLOADED, f"{state.deployment.name} is at capacity"
                )
                continue
            try:
                return await self._with_retries(message, writer, model, state, outcome)
            except SwitchyardError as exc:
                if writer.started or exc.code not in FALLBACK:
                    raise
                last = exc
        if last is None:
            raise SwitchyardError(ErrorCode.CIRCUIT_OPEN, f"model {model!r} has no deployment")
        raise last

    async def _with_retries(
        self,
        message: RequestMessage,
        writer: ReplyWriter,
        model: str,
        state: DeploymentState,
        outcome: Outcome,
    ) -> Finish:
        """Attempts on one deployment: transient failures retried with full-jitter backoff, at
        most `max_attempts` times and only while the deployment's retry budget allows."""
        deployment = state.deployment
        config = deployment.resilience
        retry = 0
        while True:
            if not state.breaker.allow():
                raise SwitchyardError(
                    ErrorCode.CIRCUIT_OPEN,
                    f"{deployment.name} is failing; retry in {state.breaker.retry_in():.1f}s",
                    retry_after=max(1, round(state.breaker.retry_in())),
                )
            if message.expired():  # an expired request is never sent upstream
                raise SwitchyardError(ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed")
            if retry == 0:
                state.budget.record_request()
            outcome.attempts += 1
            outcome.deployment = deployment
            state.inflight += 1
            state.calls += 1
            try:
                finish = await self._attempt(message, writer, model, deployment, outcome)
            except SwitchyardError as exc:
                COUNT_UPSTREAM_ATTEMPTS.inc(deployment.name, exc.code.value)
                retry_after = parse_retry_after(exc.body.details.get("retry_after"))
                if exc.code in UNHEALTHY:
                    state.breaker.record_failure(retry_after)
                else:
                    state.breaker.record_neutral()
                if writer.started or exc.code not in RETRYABLE:
                    raise
                retry += 1
                if retry >= config.max_attempts or not state.budget.try_spend():
                    raise
                delay = max(
                    backoff_delay(retry - 1, config.backoff_base, config.backoff_max),
                    retry_after or 0.0,
                )
                if delay >= message.remaining():
                    raise
                log.info("retrying %s in %.2fs after %s", deployment.name, delay, exc.code.value)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                state.breaker.record_neutral()
                raise
            finally:
                state.inflight -= 1
            state.breaker.record_success()
            COUNT_UPSTREAM_ATTEMPTS.inc(deployment.name, "ok")
            return Finish(finish.finish_reason, _priced(finish.usage, deployment))

    def _stream(
        self, message: RequestMessage, model: str, deployment: Deployment
    ) -> tuple[AsyncGenerator[ProviderEvent, None], bool]:
        """The provider's answer, and whether it streams (else it comes whole at the end)."""
        provider = self._providers.get(deployment.provider)
        if provider is None:
            raise SwitchyardError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"provider {deployment.provider!r} is not enabled here",
            )
        body = message.body
        if body.model != model:  # an alias, or a fallback model
            body = body.model_copy(update={"model": model})
        streams = provider.streams(body)
        if isinstance(message, ChatRequestMessage):
            return provider.chat(body, deployment), streams  # type: ignore[arg-type]
        return provider.complete(body, deployment), streams  # type: ignore[arg-type]

    async def _attempt(
        self,
        message: RequestMessage,
        writer: ReplyWriter,
        model: str,
        deployment: Deployment,
        outcome: Outcome,
    ) -> Finish:
        """One call to one deployment, its chunks relayed as they arrive."""
        stream, streams = self._stream(message, model, deployment)
        async with contextlib.aclosing(stream):
            # One timer for the whole call (a timeout per chunk cost 7 % of inference CPU):
            # the first-token bound, then the idle bound between chunks; an answer that comes
            # whole has the deployment's `response_timeout`.
            first = deployment.first_token_timeout if streams else deployment.response_timeout
            idle = IdleTimeout(first)
            try:
                async with idle:
                    while True:
                        try:
                            event = await anext(stream)
                        except StopAsyncIteration:
                            raise SwitchyardError(
                                ErrorCode.PROVIDER_ERROR, "provider stream ended without finishing"
                            ) from None
                        if isinstance(event, Finish):
                            if event.tail:
                                if not writer.started:
                                    outcome.first_token_at = time.monotonic()
                                await writer.last(model, event.tail)
                            return event
                        if not writer.started:
                            outcome.first_token_at = time.monotonic()
                        if isinstance(event, list):
                            await writer.chunks(model, event)
                        else:
                            await writer.chunk(model, event)
                        idle.touch(deployment.idle_timeout)
            except TimeoutError:
                what = "next chunk" if writer.started else "first token" if streams else "answer"
                raise SwitchyardError(
                    ErrorCode.PROVIDER_TIMEOUT,
                    f"{deployment.name} sent no {what} within {idle.limit:g}s",
                    timeout=idle.limit,
                ) from None

    async def _publish_usage(
        self,
        message: RequestMessage,
        model: str,
        writer: ReplyWriter,
        outcome: Outcome,
        error: ErrorBody | None,
        started: float,
    ) -> None:
        deployment = outcome.deployment
        first = outcome.first_token_at
        # The bytes UsageEvent would serialise to (the usage test validates them): every field
        # is made here, of the right type, so pydantic would only cost time (8 µs a request).
        event = {
            "kind": "chat" if isinstance(message, ChatRequestMessage) else "completion",
            "model": model,
            "deployment": deployment.name if deployment else None,
            "provider": deployment.provider if deployment else None,
            "usage": outcome.usage.model_dump(),
            "outcome": "ok" if error is None else error.code.value,
            "cache": writer.cache,
            "degraded": writer.degraded or None,
            "attempts": outcome.attempts,
            "latency_ms": round((time.monotonic() - started) * 1000, 3),
            "first_token_ms": None if first is None else round((first - started) * 1000, 3),
        }
        with contextlib.suppress(Exception):
            await self._publish(subjects.EVENTS_USAGE, writer.encode(event))


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(getattr(part, "text", "") for part in content)
    return ""


def _last_user_text(message: ChatRequestMessage) -> str:
    for item in reversed(message.body.messages):
        if item.role == "user":
            return _text_of(item.content)
    return ""


def _with_sources(message: ChatRequestMessage, hits: list[tuple[str, SearchHit]]) -> list[Any]:
    """The conversation with a system message of numbered sources in front."""
    if hits:
        sources = "\n\n".join(
            f"[{number}] {hit.title or hit.external_id}"
            + (f" ({hit.section})" if hit.section else "")
            + f"\n{hit.text}"
            for number, (_, hit) in enumerate(hits, start=1)
        )
        instructions = (
            "Answer using the numbered sources below and cite them like [1]. If they do not "
            "contain the answer, say so.\n\n" + sources
        )
    else:
        instructions = "No source in the searched collections matches this question; say so."
    return [SystemMessage(role="system", content=instructions), *message.body.messages]
