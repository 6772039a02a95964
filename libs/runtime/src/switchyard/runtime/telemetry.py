"""OpenTelemetry, minimal for now: a tracer provider per service and W3C trace context in NATS
headers, so one request is one trace across services and every log line carries its trace id.
Exporting spans (OTLP) and metrics land with the observability work.

Spans are built only when something would receive them: until a span processor (an exporter) is
added to the provider, `current_span` makes a non-recording span that still carries the trace
(the parent's trace id, a new span id), so propagation and log correlation work the same and the
hot path does not pay ~30 µs a span for objects nobody reads.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from types import TracebackType

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class SwitchyardTracerProvider(TracerProvider):
    """The SDK's provider, knowing whether any span processor would receive its spans."""

    recording = False

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        """Add a processor (an exporter's); from now on spans are recorded."""
        super().add_span_processor(span_processor)
        self.recording = True


def setup_tracing(service: str) -> SwitchyardTracerProvider:
    """Install the process's tracer provider (named `switchyard-<service>`)."""
    resource = Resource.create({"service.name": f"switchyard-{service}"})
    provider = SwitchyardTracerProvider(resource=resource)
    trace.set_tracer_provider(provider)
    return provider


def _recording() -> bool:
    provider = trace.get_tracer_provider()
    return not isinstance(provider, SwitchyardTracerProvider) or provider.recording


def _nonzero_bits(bits: int) -> int:
    while not (value := random.getrandbits(bits)):
        pass
    return value


def _unrecorded_span(context: Context | None) -> trace.Span:
    """A span that joins the trace in `context` (or starts one) and records nothing."""
    parent = trace.get_current_span(context).get_span_context()
    if parent.is_valid:
        trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
    else:
        trace_id, flags, state = _nonzero_bits(128), _SAMPLED, None
    span_context = SpanContext(
        trace_id, _nonzero_bits(64), is_remote=False, trace_flags=flags, trace_state=state
    )
    return NonRecordingSpan(span_context)


_W3C_TRACE = TraceContextTextMapPropagator()
_DEFAULT_KINDS = [TraceContextTextMapPropagator, W3CBaggagePropagator]


class _Shortcut:
    """Whether the global propagator is OpenTelemetry's default (W3C trace context + baggage, as
    `OTEL_PROPAGATORS` unset gives), checked once per propagator object."""

    textmap: TextMapPropagator | None = None
    default = False

    @classmethod
    def applies(cls) -> bool:
        textmap = propagate.get_global_textmap()
        if cls.textmap is not textmap:
            kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
            cls.textmap = textmap
            cls.default = type(textmap) is CompositePropagator and kinds == _DEFAULT_KINDS
        return cls.default


# A `traceparent` exactly as version 00 of W3C trace context writes it (what our services send):
# `context_from` reads it in a quarter of the propagator's time (which also goes through
# its getter, a regular expression search with options and the context API).
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def trace_headers() -> dict[str, str]:
    """The current trace context as message headers (`traceparent`, `tracestate`)."""
    carrier: dict[str, str] = {}
    if _Shortcut.applies() and not baggage.get_all():
        _W3C_TRACE.inject(carrier)  # what the default composite writes when there is no baggage
    else:
        propagate.inject(carrier)
    return carrier


def context_from(headers: Mapping[str, str] | None) -> Context:
    """The trace context a message's headers carry (an empty context when none)."""
    if not headers:
        return Context()
    if _Shortcut.applies() and "baggage" not in headers:
        # What the default composite reads without baggage. A plain version-00 `traceparent`
        # (with no `tracestate`) is read here; anything else by the propagator itself.
        parent = headers.get("traceparent")
        if (
            parent is not None
            and "tracestate" not in headers
            and (match := _TRACEPARENT_00.fullmatch(parent)) is not None
        ):
            trace_id, span_id = int(match[1], 16), int(match[2], 16)
            if not (trace_id and span_id):
                return Context()  # all-zero ids are invalid: no parent
            flags = TraceFlags(int(match[3], 16))
            remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
            return trace.set_span_in_context(NonRecordingSpan(remote), Context())
        return _W3C_TRACE.extract(headers)
    return propagate.extract(dict(headers))


def trace_id_hex() -> str | None:
    """The current span's trace id, as 32 hex digits."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class current_span:  # a lower-case name: used like the context manager it replaces
    """`tracer.start_as_current_span(…)` for the hot path: the same span, made current and ended,
    exceptions recorded, without two generator-based context managers (8 µs a request); a
    non-recording span of the same trace while no span processor is installed."""

    __slots__ = ("_span", "_token")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        *,
        context: Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Attributes = None,
    ) -> None:
        if _recording():
            self._span = tracer.start_span(name, context=context, kind=kind, attributes=attributes)
        else:
            self._span = _unrecorded_span(context)
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if isinstance(exc, Exception) and self._span.is_recording():
                self._span.record_exception(exc)
                self._span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._span.end()
