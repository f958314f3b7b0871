"""One trace per event across every hop, exported over the wire (OTLP/HTTP, protobuf) to a
local receiver; and no secret or signature value in logs or span attributes."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from hookstream.kafka.topics import retry_topic
from hookstream.sources import sign_request
from hookstream.telemetry import install_tracer_provider, span_exporters, trace_export
from tests.conftest import HMAC_SECRET, ROOT, STANDARD_SECRET
from tests.integration.test_end_to_end import event_body, post_signed
from tests.integration.test_retries import cli_json

pytestmark = pytest.mark.integration

DESTINATION_SECRET = "whsec_dGhlLWRlc3RpbmF0aW9uLXNlY3JldC0xMjM0NQ=="
KIND = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    links: tuple[str, ...]  # linked trace ids


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver: what the exporters sent, decoded from protobuf."""

    url: str
    spans: list[Span] = field(default_factory=list)
    requests: int = 0

    def trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def wait_for(self, check: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.1)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def _decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        service=str(resource.get("service.name")),
                        name=span.name,
                        kind=KIND.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        links=tuple(link.trace_id.hex() for link in span.links),
                    )
                )
    return spans


@pytest.fixture
async def receiver(unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[Receiver]:
    port = unused_tcp_port_factory()
    state = Receiver(url=f"http://127.0.0.1:{port}")

    async def export(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        state.spans.extend(_decode(body))
        state.requests += 1
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


def otel_env(receiver: Receiver) -> dict[str, str]:
    """The test's environment minus any OTEL_* of its own, exporting to the receiver."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="100")
    return env


@pytest.fixture
async def ingress_exports_to(receiver: Receiver) -> AsyncIterator[None]:
    """The in-process ingress exports through the exporter `hookstream.telemetry` picks for
    OTEL_EXPORTER_OTLP_ENDPOINT, batched in its own thread (the receiver shares this loop)."""
    provider = install_tracer_provider("hookstream-ingress")
    (exporter,) = span_exporters(trace_export({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}))
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=100)
    provider.add_span_processor(processor)
    yield
    await asyncio.to_thread(processor.shutdown)


def hook_id(span: Span) -> Any:
    return span.attributes.get("hookstream.event_id") or span.attributes.get("messaging.message.id")


def http_status(span: Span) -> Any:
    return span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))


async def test_one_trace_covers_ingress_worker_retry_and_destination(
    make_settings, worker_process, sink, ingress_url, receiver, ingress_exports_to
) -> None:
    settings, config = make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}}
    )
    sent_traceparents: list[str] = []

    def answer(delivery, attempt: int) -> int:
        sent_traceparents.append(delivery.headers.get("traceparent", ""))
        return 503 if attempt == 1 else 204

    sink.answer = answer
    worker_process(settings, config, env=otel_env(receiver))
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        status = await post_signed(
            session, base, settings, "std", "traced-1", event_body("traced-1", "c1", 0)
        )
    assert status == 202
    await sink.wait_for(1, timeout=60)

    # The destination got the trace in `traceparent`, on both attempts.
    assert len(sent_traceparents) == 2
    (trace_id,) = {tp.split("-")[1] for tp in sent_traceparents}
    retry0 = retry_topic(settings, 0)

    def complete() -> bool:
        names = [s.name for s in receiver.trace(trace_id)]
        return (
            f"{settings.topics.events} process" in names
            and f"{retry0} process" in names
            and sum(1 for s in receiver.trace(trace_id) if s.kind == "CLIENT") == 2
            and any(s.kind == "SERVER" for s in receiver.trace(trace_id))
        )

    await receiver.wait_for(complete, timeout=30)
    spans = receiver.trace(trace_id)
    by_id = {s.span_id: s for s in spans}

    (server,) = [s for s in spans if s.kind == "SERVER"]
    assert server.name == "POST /webhooks/{source}"  # the aiohttp-server instrumentation's
    assert server.parent_id == ""  # the sender sent no traceparent: the trace starts here
    assert http_status(server) == 202
    (producer,) = [s for s in spans if s.kind == "PRODUCER" and s.parent_id == server.span_id]
    assert producer.name == f"{settings.topics.events} publish"
    assert producer.parent_id == server.span_id
    assert producer.attributes["messaging.system"] == "kafka"
    assert producer.attributes["messaging.destination.name"] == settings.topics.events
    assert producer.attributes["messaging.message.id"] == "traced-1"

    first = next(s for s in spans if s.name == f"{settings.topics.events} process")
    retry = next(s for s in spans if s.name == f"{retry0} process")
    assert first.kind == retry.kind == "CONSUMER"
    assert first.service == retry.service == "hookstream-worker"
    assert first.parent_id == producer.span_id  # through the Kafka header
    # The retry hop: the worker's PRODUCER span for the retry record, then its header.
    (hop,) = [s for s in spans if s.kind == "PRODUCER" and s.parent_id == first.span_id]
    assert hop.name == f"{retry0} publish"
    assert hop.attributes["messaging.destination.name"] == retry0
    assert retry.parent_id == hop.span_id
    assert first.attributes["messaging.destination.name"] == settings.topics.events
    assert retry.attributes["messaging.message.id"] == "traced-1"

    clients = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: http_status(s))
    assert [http_status(s) for s in clients] == [204, 503]
    for client, consumer in ((clients[1], first), (clients[0], retry)):
        deliver = by_id[client.parent_id]
        assert deliver.name == "deliver sink"
        assert deliver.parent_id == consumer.span_id
    # What the destination saw is exactly the CLIENT span of each attempt.
    assert [tp.split("-")[2] for tp in sent_traceparents] == [
        clients[1].span_id,
        clients[0].span_id,
    ]
    # Every span about the event is in this one trace.
    assert {s.trace_id for s in receiver.spans if hook_id(s) == "traced-1"} == {trace_id}

    # `events show` names the same trace.
    shown = await asyncio.to_thread(cli_json, config, "events", "show", "traced-1")
    assert shown["trace_id"] == trace_id


def spawn_ingress(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`hookstream ingress` as a real process: its own logging and tracing setup."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", "ingress", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )


async def start_ingress(config: Path, settings, env: dict[str, str], log: Path):
    process = spawn_ingress(config, env, log)
    base = f"http://127.0.0.1:{settings.ingress.port}"
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return process, base
            except aiohttp.ClientError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the ingress did not start; see {log}")
            await asyncio.sleep(0.2)


async def test_secrets_and_signatures_never_reach_logs_or_spans(
    make_settings, worker_process, sink, receiver, tmp_path
) -> None:
    settings, config = make_settings(
        destinations={
            "sink": {
                "url": sink.url,
                "sources": ["std", "partner"],
                "timeout": "2s",
                "secret": DESTINATION_SECRET,
            }
        }
    )
    sink.answer = lambda delivery, attempt: 503 if attempt == 1 else 204
    env = otel_env(receiver)
    # At debug, so the happy path's per-event lines are there to check too.
    worker = worker_process(settings, config, env=env, args=["--log-level", "debug"])
    ingress_log = tmp_path / "ingress.log"
    ingress, base = await start_ingress(config, settings, env, ingress_log)
    sent_signatures: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            for source, event_id in (("std", "secret-std-1"), ("partner", "secret-partner-1")):
                body = event_body(event_id, "c9", 0)
                headers = sign_request(settings.sources[source], body, event_id, time.time())
                sent_signatures += [v for k, v in headers.items() if "signature" in k.lower()]
                headers.update({"Content-Type": "application/json", "X-Event-Id": event_id})
                async with session.post(
                    f"{base}/webhooks/{source}", data=body, headers=headers
                ) as response:
                    assert response.status == 202
            # A forged signature: refused, and its value is not echoed anywhere either.
            forged = {"X-Signature": "sha256=" + "ab" * 32, "X-Event-Id": "forged-1"}
            sent_signatures.append(forged["X-Signature"])
            async with session.post(
                f"{base}/webhooks/partner", data=b"{}", headers=forged
            ) as response:
                assert response.status == 401
        await sink.wait_for(2, timeout=60)
        await receiver.wait_for(
            lambda: sum(1 for s in receiver.spans if s.kind == "CLIENT") >= 4, timeout=30
        )
        await receiver.wait_for(
            lambda: any(s.service == "hookstream-ingress" for s in receiver.spans), timeout=30
        )
    finally:
        ingress.terminate()
        ingress.wait(30)
        worker.stop()

    received_signatures = [d.headers["webhook-signature"] for d in sink.received]
    assert all(received_signatures)
    secrets = [STANDARD_SECRET, STANDARD_SECRET.removeprefix("whsec_"), HMAC_SECRET]
    secrets += [DESTINATION_SECRET, DESTINATION_SECRET.removeprefix("whsec_")]
    signatures = [part for value in sent_signatures + received_signatures for part in value.split()]
    signatures += [s.split(",", 1)[-1] for s in signatures if "," in s]  # "v1,<base64>"
    forbidden = [v for v in secrets + signatures if len(v) >= 16]
    assert len(forbidden) >= 10

    logs = {"ingress": ingress_log.read_text(), "worker": worker.output()}
    attributes = json.dumps([s.attributes for s in receiver.spans])
    for value in forbidden:
        for name, text in logs.items():
            assert value not in text, f"{name} log leaks {value[:8]}..."
        assert value not in attributes, f"a span attribute leaks {value[:8]}..."

    # Meanwhile the log lines about an event carry its ids and its trace.
    lines = [json.loads(line) for line in logs["ingress"].splitlines() if line.startswith("{")]
    accepted = [line for line in lines if line.get("event") == "accepted"]
    assert len(accepted) == 2
    for line in accepted:
        assert {"event_id", "source", "trace_id", "span_id"} <= line.keys()
    worker_lines = [
        json.loads(line) for line in logs["worker"].splitlines() if line.startswith("{")
    ]
    about_events = [line for line in worker_lines if line.get("event_id", "").startswith("secret")]
    assert {line["event"] for line in about_events} >= {"retry_scheduled", "delivered"}
    for line in about_events:
        assert {"source", "trace_id", "span_id"} <= line.keys(), line
