"""Tracing configuration from OTEL_* variables, and trace ids on log lines. Pure."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from hookstream.telemetry import GRPC, HTTP_PROTOBUF, TraceExport, _add_trace_context, trace_export


def test_off_by_default() -> None:
    assert trace_export({}) == TraceExport()


def test_an_endpoint_turns_on_otlp_over_http() -> None:
    export = trace_export({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318/"})
    assert export == TraceExport(HTTP_PROTOBUF, "http://jaeger:4318/v1/traces")


def test_grpc_uses_the_endpoint_as_given() -> None:
    export = trace_export(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )
    assert export == TraceExport(GRPC, "http://jaeger:4317")


def test_signal_specific_settings_win() -> None:
    export = trace_export(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4317",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        }
    )
    assert export == TraceExport(GRPC, "http://b:4317")


def test_otlp_named_without_endpoint_uses_the_exporter_default() -> None:
    assert trace_export({"OTEL_TRACES_EXPORTER": "otlp"}) == TraceExport(HTTP_PROTOBUF, None)


def test_console_and_both() -> None:
    assert trace_export({"OTEL_TRACES_EXPORTER": "console"}) == TraceExport(console=True)
    both = trace_export(
        {"OTEL_TRACES_EXPORTER": "otlp, Console", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"}
    )
    assert both == TraceExport(HTTP_PROTOBUF, "http://j:4318/v1/traces", console=True)


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "TRUE"},
    ],
)
def test_explicitly_off(environ: dict[str, str]) -> None:
    assert trace_export(environ) == TraceExport()


def test_what_is_not_understood_is_reported_not_fatal() -> None:
    export = trace_export(
        {
            "OTEL_TRACES_EXPORTER": "zipkin,otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        }
    )
    assert export.otlp_protocol == HTTP_PROTOBUF
    assert export.otlp_endpoint == "http://j:4318/v1/traces"
    assert len(export.ignored) == 2
    assert any("zipkin" in i for i in export.ignored)


def test_log_lines_get_the_current_trace_and_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    assert _add_trace_context(None, "info", {"event": "x"}) == {"event": "x"}
    with tracer.start_as_current_span("s") as span:
        context = span.get_span_context()
        line = _add_trace_context(None, "info", {"event": "x"})
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert len(line["trace_id"]) == 32
    assert len(line["span_id"]) == 16


def test_the_lean_server_span_middleware_unless_headers_are_to_be_captured() -> None:
    from opentelemetry.instrumentation import aiohttp_server

    from hookstream.telemetry import _server_span_middleware, http_server_middlewares

    assert http_server_middlewares(environ={}) == [_server_span_middleware]
    capture = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-request-id"}
    (official,) = http_server_middlewares(environ=capture)
    assert official is not _server_span_middleware
    assert official.__module__ == aiohttp_server.__name__


def test_ids_only_spans_continue_the_trace_and_carry_it_in_traceparent() -> None:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from hookstream.telemetry import IdsOnlyTracerProvider

    tracer = IdsOnlyTracerProvider().get_tracer("t")
    with tracer.start_as_current_span("server") as root:
        started = root.get_span_context()
        assert started.is_valid
        assert started.trace_flags.sampled
        assert not root.is_recording()
        with tracer.start_as_current_span("publish") as child:
            context = child.get_span_context()
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
    assert context.trace_id == started.trace_id
    assert context.span_id != started.span_id
    assert carrier["traceparent"] == (f"00-{context.trace_id:032x}-{context.span_id:016x}-01")
    # A sender's traceparent, sampled or not, is continued as it says.
    sender = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(sender)):
        span = tracer.start_span("server")
    assert span.get_span_context().trace_id == 0xABC
    assert not span.get_span_context().trace_flags.sampled
    assert trace.get_current_span() is not span
