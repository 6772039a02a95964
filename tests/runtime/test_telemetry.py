"""Spans: recorded once a processor is installed; until then, the same trace without span objects."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from switchyard.runtime.telemetry import (
    SwitchyardTracerProvider,
    context_from,
    current_span,
    trace_headers,
    trace_id_hex,
)

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> SwitchyardTracerProvider:
    """A provider of our kind standing in for the process's global one."""
    ours = SwitchyardTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: ours)
    return ours


def test_without_a_processor_spans_join_the_trace_unrecorded(
    provider: SwitchyardTracerProvider,
) -> None:
    tracer = provider.get_tracer("test")
    with current_span(tracer, "outer", context=context_from({"traceparent": PARENT})) as span:
        assert not span.is_recording()
        ctx = span.get_span_context()
        assert ctx.is_valid
        assert format(ctx.trace_id, "032x") == PARENT.split("-")[1]
        assert format(ctx.span_id, "016x") != PARENT.split("-")[2]  # a span of its own
        assert trace_id_hex() == PARENT.split("-")[1]
        sent = trace_headers()["traceparent"]
        assert sent.split("-")[1] == PARENT.split("-")[1]
        assert sent.endswith("-01")  # sampled, as the SDK's default sampler would say
        with current_span(tracer, "inner") as inner:
            assert inner.get_span_context().trace_id == ctx.trace_id
            assert inner.get_span_context().span_id != ctx.span_id
    assert trace_id_hex() is None  # detached on exit


def test_without_a_parent_a_new_trace_starts(provider: SwitchyardTracerProvider) -> None:
    tracer = provider.get_tracer("test")
    with current_span(tracer, "a") as a:
        first = a.get_span_context().trace_id
    with current_span(tracer, "b") as b:
        second = b.get_span_context().trace_id
    assert first
    assert second
    assert first != second


def test_with_a_processor_spans_are_recorded(provider: SwitchyardTracerProvider) -> None:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    def fail() -> None:
        with current_span(
            tracer,
            "work",
            context=context_from({"traceparent": PARENT}),
            kind=trace.SpanKind.CONSUMER,
            attributes={"switchyard.request_id": "r1"},
        ) as span:
            assert span.is_recording()
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fail()
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "work"
    assert format(finished.context.trace_id, "032x") == PARENT.split("-")[1]
    assert finished.attributes == {"switchyard.request_id": "r1"}
    assert finished.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in finished.events] == ["exception"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": PARENT},
        {"traceparent": PARENT, "tracestate": "vendor=abc,other=1"},
        {"traceparent": PARENT, "baggage": "user=alice"},
        {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
        {"traceparent": "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"},
        {"traceparent": f" {PARENT}\t"},
        {"traceparent": f"{PARENT}-extra"},
        {"traceparent": "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"},
        {"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c0-b7ad6b7169203331-01"},
        {"traceparent": "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": "garbage"},
        {"tracestate": "vendor=abc"},
    ],
)
def test_propagation_shortcut_matches_the_global_propagator(headers: dict[str, str]) -> None:
    ours = context_from(headers)
    theirs = propagate.extract(dict(headers))
    assert trace.get_current_span(ours).get_span_context() == (
        trace.get_current_span(theirs).get_span_context()
    )
    assert baggage.get_all(ours) == baggage.get_all(theirs)
    token = otel_context.attach(ours)
    try:
        expected: dict[str, str] = {}
        propagate.inject(expected)
        assert trace_headers() == expected
    finally:
        otel_context.detach(token)
