"""OpenTelemetry, minimal for now: a tracer provider per service and W3C trace context in NATS
headers, so one request is one trace across services and every log line carries its trace id.
Exporting spans (OTLP) and metrics land with the observability work."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def setup_tracing(service: str) -> None:
    """Install the process's tracer provider (named `switchyard-<service>`)."""
    resource = Resource.create({"service.name": f"switchyard-{service}"})
    trace.set_tracer_provider(TracerProvider(resource=resource))


def trace_headers() -> dict[str, str]:
    """The current trace context as message headers (`traceparent`, `tracestate`)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(headers: Mapping[str, str] | None) -> Context:
    """The trace context a message's headers carry (an empty context when none)."""
    return propagate.extract(dict(headers or {}))


def trace_id_hex() -> str | None:
    """The current span's trace id, as 32 hex digits."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
