"""Logging and tracing setup, done once at each entry point.

Tracing is configured only from the standard OpenTelemetry variables: spans always exist
(trace ids reach logs, Kafka headers and the audit trail), export is opt-in:
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_TRACES_EXPORTER=otlp`) sends OTLP over HTTP, or gRPC
with `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`; `OTEL_TRACES_EXPORTER=console` prints spans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, SpanKind

log = structlog.get_logger("hookstream.telemetry")

HTTP_PROTOBUF = "http/protobuf"
GRPC = "grpc"


def _add_trace_context(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event_dict.setdefault("trace_id", format(span.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span.span_id, "016x"))
    return event_dict


def setup_logging(level: str = "info", json_logs: bool | None = None) -> None:
    """Structured logs: JSON lines, or readable ones when a terminal is attached.

    hookstream's own events and every stdlib record (Faust, mode, aiokafka, aiohttp,
    librdkafka through confluent-kafka's logger, warnings) end as one line each, rendered
    alike, on stderr. Call it before Faust's Worker starts, and start that with
    `override_logging=False`, or it replaces the root handler with its own plain text.
    """
    as_json = not sys.stderr.isatty() if json_logs is None else json_logs
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_context,
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda name=None, *_: LineWriter(handler, name),
        cache_logger_on_first_use=True,
    )


class LineWriter:
    """structlog's output for hookstream's own events: the rendered line is written straight
    to the stdlib handler's stream, under the handler's lock.

    Going through a stdlib Logger would cost three times as much per event (a LogRecord,
    then ProcessorFormatter's copy of it) on the ingress's request path; sharing the lock
    keeps lines from a Kafka client's thread from splitting ours.
    """

    def __init__(self, handler: logging.StreamHandler[TextIO], name: str | None = None) -> None:
        self._handler = handler
        self.name = name or "hookstream"

    def msg(self, message: str) -> None:
        """Write one rendered event as one line."""
        with self._handler.lock or contextlib.nullcontext():
            self._handler.stream.write(message + "\n")
            self._handler.stream.flush()

    log = debug = info = warn = warning = msg
    err = error = critical = exception = fatal = failure = msg


@dataclass(frozen=True, slots=True)
class TraceExport:
    """Where finished spans go, as the OTEL_* variables say."""

    otlp_protocol: str | None = None  # HTTP_PROTOBUF | GRPC; None: no OTLP export
    otlp_endpoint: str | None = None  # None: the exporter's own default (localhost)
    console: bool = False
    ignored: tuple[str, ...] = ()  # settings that were not understood, for a warning


def trace_export(environ: Mapping[str, str]) -> TraceExport:
    """Read the standard variables. Unlike the SDK's default, no endpoint means no export."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TraceExport()
    traces_endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    names = [
        n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()
    ]
    if not names:
        names = ["otlp"] if traces_endpoint or endpoint else []
    ignored = tuple(f"OTEL_TRACES_EXPORTER={n}" for n in names if n not in ("otlp", "console"))
    if "none" in names:
        return TraceExport(ignored=tuple(i for i in ignored if not i.endswith("=none")))
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or HTTP_PROTOBUF
    ).lower()
    if protocol not in (HTTP_PROTOBUF, GRPC):
        ignored += (f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} (using {HTTP_PROTOBUF})",)
        protocol = HTTP_PROTOBUF
    target: str | None = None
    if traces_endpoint:
        target = traces_endpoint  # signal-specific endpoints are used as given
    elif endpoint:
        target = endpoint if protocol == GRPC else endpoint.rstrip("/") + "/v1/traces"
    return TraceExport(
        otlp_protocol=protocol if "otlp" in names else None,
        otlp_endpoint=target if "otlp" in names else None,
        console="console" in names,
        ignored=ignored,
    )


def install_tracer_provider(service_name: str) -> TracerProvider:
    """The process's SDK tracer provider, installed once; later calls return the same one."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES; OTEL_TRACES_SAMPLER is read by the SDK.
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    trace.set_tracer_provider(provider)
    return provider


def setup_tracing(
    service_name: str, environ: Mapping[str, str], *, record_unexported: bool = True
) -> trace.TracerProvider:
    """Tracing from the standard OTEL_* variables; spans always carry ids, export is opt-in.

    `record_unexported=False`: when nothing exports spans, make them ids only (IdsOnly) rather
    than recording spans that no one will read; the ingress's request path asks for that.
    """
    export = trace_export(environ)
    for setting in export.ignored:
        log.warning("tracing_setting_ignored", setting=setting)
    exporters = span_exporters(export)
    if not exporters and not record_unexported:
        current = trace.get_tracer_provider()
        if not isinstance(current, TracerProvider | IdsOnlyTracerProvider):
            trace.set_tracer_provider(IdsOnlyTracerProvider())
        instrument_http_client()
        return trace.get_tracer_provider()
    provider = install_tracer_provider(environ.get("OTEL_SERVICE_NAME") or service_name)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    instrument_http_client()
    return provider


class IdsOnlyTracerProvider(trace.TracerProvider):
    """Spans that are ids only: each continues its parent's trace (or starts one) with a
    fresh span id, and its context is current while it runs, so trace ids still reach logs,
    Kafka headers (`traceparent`, sampled unless the parent said otherwise) and the audit
    trail. Nothing is recorded: attributes, events and timing are dropped, which is all a
    span no exporter reads would have been good for, at a fraction of the cost."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _IDS_ONLY_TRACER


class _IdsOnlyTracer(trace.Tracer):
    def __init__(self) -> None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        self._ids = RandomIdGenerator()

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
        else:
            trace_id = self._ids.generate_trace_id()
            flags, state = trace.TraceFlags(trace.TraceFlags.SAMPLED), None
        span_id = self._ids.generate_span_id()
        return trace.NonRecordingSpan(trace.SpanContext(trace_id, span_id, False, flags, state))

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # the API's decorator is private
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context)
        with trace.use_span(span, end_on_exit=False):
            yield span


_IDS_ONLY_TRACER = _IdsOnlyTracer()


def span_exporters(export: TraceExport) -> list[SpanExporter]:
    """The exporters `export` asks for (they read OTEL_EXPORTER_OTLP_HEADERS etc. themselves)."""
    exporters: list[SpanExporter] = []
    if export.otlp_protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        exporters.append(GrpcSpanExporter(endpoint=export.otlp_endpoint))
    elif export.otlp_protocol == HTTP_PROTOBUF:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter(endpoint=export.otlp_endpoint))
    if export.console:
        exporters.append(ConsoleSpanExporter())
    return exporters


def instrument_http_client() -> None:
    """Official aiohttp-client instrumentation: every ClientSession made from now on (Faust's
    `app.http_client` is made lazily, after this) opens a CLIENT span per request and sends
    that span's `traceparent`."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    instrumentor = AioHttpClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def http_server_middlewares(environ: Mapping[str, str] | None = None) -> list[Middleware]:
    """The SERVER span of each request, as one aiohttp middleware for one app.

    The span is the one the official aiohttp-server instrumentation makes (name
    `METHOD route`, kind SERVER, continuing the sender's `traceparent`, HTTP semantic
    convention attributes, error status on a 5xx), made by a lean middleware without that
    library's per-request environment reads, URL rebuilding and metric instruments: on the
    ingress's request path those cost more than the signature check. When headers are to be
    captured as attributes (`OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_*`), the
    official middleware is used, which does that. When something else
    (`opentelemetry-instrument`) already instrumented aiohttp, its patched Application adds
    the official middleware and this returns none.
    """
    from opentelemetry.instrumentation import aiohttp_server

    instrumentor = aiohttp_server.AioHttpServerInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return []
    env = os.environ if environ is None else environ
    if not any(env.get(name, "").strip() for name in _CAPTURE_HEADERS):
        return [_server_span_middleware]
    if aiohttp_server.active_requests_counter is None:
        with warnings.catch_warnings():
            # instrument() subclasses web.Application, which aiohttp discourages; the
            # subclass is dropped again at once.
            warnings.filterwarnings("ignore", "Inheritance class", DeprecationWarning)
            instrumentor.instrument()
            instrumentor.uninstrument()
    return [aiohttp_server.create_aiohttp_middleware()]


_CAPTURE_HEADERS = (
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
)
_server_tracer = trace.get_tracer("hookstream.http.server")


class _HeaderGetter(Getter[web.Request]):
    """Reads propagation headers from an aiohttp request."""

    def get(self, carrier: web.Request, key: str) -> list[str] | None:
        value = carrier.headers.get(key)
        return None if value is None else [value]

    def keys(self, carrier: web.Request) -> list[str]:
        return list(carrier.headers.keys())


_HEADERS = _HeaderGetter()


@web.middleware
async def _server_span_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    method = request.method
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": request.scheme,
        "url.path": request.path,
        "network.protocol.version": f"{request.version.major}.{request.version.minor}",
    }
    if route:
        attributes["http.route"] = route
    peer = request.remote
    if peer:
        attributes["client.address"] = peer
    with _server_tracer.start_as_current_span(
        f"{method} {route}" if route else method,
        context=propagate.extract(request, getter=_HEADERS),
        kind=SpanKind.SERVER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _set_http_status(span, exc.status)
            raise
        _set_http_status(span, response.status)
        return response


def _set_http_status(span: trace.Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)


@contextmanager
def publish_span(
    tracer: trace.Tracer,
    topic: str,
    *,
    partition: int | None = None,
    name: str | None = None,
    context: Context | None = None,
    links: Sequence[Link] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[list[tuple[str, bytes]]]:
    """The PRODUCER span of one write to `topic`, and the trace headers that carry it on.

    Every hop of an event's trace (ingress, retry, DLQ, redrive) writes its record inside
    one of these, with these headers instead of the trace headers of the record it read.
    """
    base: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
    }
    if partition is not None:
        base["messaging.destination.partition.id"] = str(partition)
    with tracer.start_as_current_span(
        name or f"{topic} publish",
        context=context,
        kind=SpanKind.PRODUCER,
        links=links,
        attributes={**base, **(attributes or {})},
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield [(k, v.encode()) for k, v in carrier.items()]
