"""The aiohttp application: one route per concern, one middleware mapping errors to status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
import uvloop
from aiohttp import web
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hookstream.config import Settings
from hookstream.core.events import UnusableEvent, describe_event, signature_headers
from hookstream.core.headers import event_headers
from hookstream.core.signatures import (
    HandshakeAnswer,
    KeyMaterialError,
    Reason,
    VerificationError,
    Verifier,
)
from hookstream.core.signatures.handshakes import Handshake
from hookstream.errors import ConfigError
from hookstream.kafka.clients import producer_config
from hookstream.kafka.topics import max_record_bytes
from hookstream.metrics import INGRESS_REQUESTS, PRODUCE_SECONDS, SIGNATURE_FAILURES
from hookstream.sources import acknowledgement, build_handshake, build_verifier
from hookstream.telemetry import http_server_middlewares, publish_span
from ingress.errors import CannotEnqueue, RecordTooLarge
from ingress.producer import EventProducer
from ingress.replay import ReplayCache
from schemas import Envelope, encode_envelope

log = structlog.get_logger("hookstream.ingress")
tracer = trace.get_tracer("hookstream.ingress")

SETTINGS = web.AppKey("settings", Settings)
PRODUCER = web.AppKey("producer", EventProducer)
VERIFIERS = web.AppKey("verifiers", dict[str, Verifier])
HANDSHAKES = web.AppKey("handshakes", dict[str, Handshake])
READINESS = web.AppKey("readiness", dict[str, Any])
REPLAYS = web.AppKey("replays", ReplayCache)
BUSY = web.AppKey("busy", list[int])  # webhook requests being handled, in a one-item list

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An RFC 9457 problem document; never carries secret material."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


@web.middleware
async def errors_to_status(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Not authentic -> 401, authentic but unusable -> 400, cannot enqueue -> 503."""
    source = request.match_info.get("source", "")
    label = source if source in request.app[SETTINGS].sources else "unknown"
    try:
        response = await handler(request)
    except VerificationError as exc:
        SIGNATURE_FAILURES.labels(label, exc.reason.value).inc()
        log.info("signature_rejected", source=label, reason=exc.reason.value)
        response = problem(401, "not authentic", exc.detail, reason=exc.reason.value)
    except UnusableEvent as exc:
        response = problem(400, "unusable event", exc.detail, reason=exc.reason)
    except RecordTooLarge as exc:
        response = problem(413, "payload too large", str(exc), reason="record_too_large")
    except CannotEnqueue as exc:
        retry_after = request.app[SETTINGS].ingress.retry_after
        log.warning("enqueue_failed", source=label, error=str(exc))
        response = problem(503, "cannot enqueue", str(exc), reason="broker_unavailable")
        response.headers["Retry-After"] = str(retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.reason.lower().replace(" ", "_")
        response = problem(exc.status, exc.reason, exc.text or exc.reason, reason=reason)
        for name in ("Allow",):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
    except Exception:
        log.exception("ingress_internal_error", source=label)
        response = problem(500, "internal error", "the gateway failed; the event was not accepted")
    if response.status == 408:
        response.force_close()  # the rest of that body must not be read as a next request
    if request.path.startswith("/webhooks/"):
        INGRESS_REQUESTS.labels(label, str(response.status)).inc()
    return response


async def receive_webhook(request: web.Request) -> web.Response:
    """POST /webhooks/{source}: verify, envelope, produce, answer after the broker ack."""
    settings = request.app[SETTINGS]
    busy = request.app[BUSY]
    if busy[0] >= settings.ingress.max_concurrent_requests:
        raise CannotEnqueue("too many requests in flight")
    busy[0] += 1
    try:
        return await _receive(request, settings)
    finally:
        busy[0] -= 1


async def _receive(request: web.Request, settings: Settings) -> web.Response:
    name = request.match_info["source"]
    source = settings.sources.get(name)
    if source is None:
        raise web.HTTPNotFound(text=f"unknown source {name!r}")
    try:
        async with asyncio.timeout(settings.ingress.body_timeout):
            body = await _read_body(request, settings.ingress.max_body_bytes)
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"the body did not arrive within {settings.ingress.body_timeout:g}s"
        ) from None
    received = time.time()
    verified = request.app[VERIFIERS][name].verify(
        request.headers, body, received, request.query_string
    )
    handshake = request.app[HANDSHAKES].get(name)
    handshake_answer = handshake(request.headers, body, received) if handshake else None
    if handshake_answer is not None:
        log.info("handshake_answered", source=name)
        return _answer(handshake_answer)
    facts = describe_event(source, request.headers, body)
    replays = request.app[REPLAYS]
    nonce = f"nonce:{verified.nonce}" if verified.nonce is not None else None
    if (
        nonce
        and replays.seen(name, nonce, received)
        and not replays.seen(name, facts.event_id, received)
    ):  # a signature that covers no body, reused on another event
        raise VerificationError(Reason.REPLAYED_SIGNATURE, "this signature was already used")
    if replays.seen(name, facts.event_id, received):
        log.info("replay_answered", source=name, event_id=facts.event_id)
        answer = {"event_id": facts.event_id, "status": "duplicate", "duplicate": True}
        return web.json_response(answer, status=200)
    # The SERVER span is the aiohttp-server instrumentation's (see create_app); it continues
    # a sender's traceparent. Every log line from here on (the middleware's too) names the event.
    structlog.contextvars.bind_contextvars(event_id=facts.event_id, source=name)
    trace.get_current_span().set_attributes(
        {"hookstream.source": name, "hookstream.event_id": facts.event_id}
    )
    envelope = Envelope(
        event_id=facts.event_id,
        source=name,
        entity_id=facts.entity_id,
        body=body,
        received_at=datetime.fromtimestamp(received, UTC),
        event_type=facts.event_type,
        content_type=_utf8_or_none(request.headers.get("Content-Type")),
        headers=signature_headers(source, request.headers),
    )
    await _produce(request.app, settings, envelope)
    replays.remember(name, facts.event_id, received, source.tolerance)
    if nonce:
        replays.remember(name, nonce, received, source.tolerance)
    log.info("accepted", source=name, event_id=facts.event_id, entity_id=facts.entity_id)
    acknowledged = acknowledgement(source, body)
    if acknowledged is not None:
        return _answer(acknowledged)
    return web.json_response({"event_id": facts.event_id, "status": "accepted"}, status=202)


def _answer(answer: HandshakeAnswer) -> web.Response:
    """A handshake's or a sender-specific acknowledgement's exact answer."""
    return web.Response(
        status=answer.status,
        body=answer.body or None,
        content_type=answer.content_type if answer.body else None,
    )


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refused (413) before reading past `limit`: at once when the declared
    Content-Length exceeds it, else (chunked) as soon as the bytes read so far do."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit, actual_size=declared, text=f"the body exceeds {limit} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(
                max_size=limit, actual_size=size, text=f"the body exceeds {limit} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _utf8_or_none(value: str | None) -> str | None:
    """A header as the envelope can store it: undecodable bytes are dropped, not fatal."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


async def _produce(app: web.Application, settings: Settings, envelope: Envelope) -> None:
    topic = settings.topics.events
    value = encode_envelope(envelope)
    # Messaging semantic conventions (Kafka). The entity id is the key; bodies and signature
    # headers never become attributes.
    with publish_span(
        tracer,
        topic,
        attributes={
            "messaging.operation.name": "send",
            "messaging.kafka.message.key": envelope.entity_id,
            "messaging.message.id": envelope.event_id,
            "messaging.message.body.size": len(value),
            "server.address": settings.kafka.bootstrap_servers,
        },
    ) as trace_headers:
        headers = trace_headers + event_headers(
            envelope.event_id, envelope.source, envelope.event_type
        )
        started = time.perf_counter()
        producer = app[PRODUCER]
        ticket = producer.send(topic, envelope.entity_id.encode(), value, headers)
        await producer.acked(ticket)
        PRODUCE_SECONDS.observe(time.perf_counter() - started)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the broker answers a metadata request (cached for a second)."""
    state = request.app[READINESS]
    now = time.monotonic()
    if now - state.get("checked", 0.0) > 1.0:
        loop = asyncio.get_running_loop()
        state["ok"] = await loop.run_in_executor(None, request.app[PRODUCER].ready, 2.0)
        state["checked"] = now
    if state["ok"]:
        return web.json_response({"status": "ready"})
    return problem(503, "not ready", "Kafka is not reachable", reason="broker_unavailable")


async def metrics(_: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def build_verifiers(settings: Settings) -> dict[str, Verifier]:
    verifiers = {}
    for name, source in settings.sources.items():
        try:
            verifiers[name] = build_verifier(source)
        except KeyMaterialError as exc:
            raise ConfigError(f"sources.{name}.{exc.field}", str(exc)) from None
        except ValueError as exc:
            raise ConfigError(f"sources.{name}", str(exc)) from None
    return verifiers


def build_handshakes(settings: Settings) -> dict[str, Handshake]:
    """The handshake of every source whose sender makes one."""
    found = {}
    for name, source in settings.sources.items():
        handshake = build_handshake(source)
        if handshake is not None:
            found[name] = handshake
    return found


async def _producer_lifecycle(app: web.Application) -> Any:
    settings = app[SETTINGS]
    producer = EventProducer(
        producer_config(
            settings,
            **{
                "message.max.bytes": max_record_bytes(settings),
                "queue.buffering.max.kbytes": max(1, settings.ingress.producer_queue_bytes // 1024),
            },
        ),
        deadline=settings.ingress.produce_timeout,
    )
    producer.start()
    app[PRODUCER] = producer
    yield
    left = await producer.close(timeout=settings.ingress.produce_timeout)
    if left:
        log.warning("producer_closed_with_undelivered", records=left)


def create_app(settings: Settings) -> web.Application:
    """The ingress application for these settings."""
    app = web.Application(
        middlewares=[*http_server_middlewares(), errors_to_status],
        client_max_size=settings.ingress.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[VERIFIERS] = build_verifiers(settings)
    app[HANDSHAKES] = build_handshakes(settings)
    app[READINESS] = {}
    app[REPLAYS] = ReplayCache()
    app[BUSY] = [0]
    app.cleanup_ctx.append(_producer_lifecycle)
    app.router.add_post("/webhooks/{source}", receive_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def run_ingress(settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests are answered and the producer flushed.
    `reuse_port`: share the port with other ingress processes (SO_REUSEPORT)."""
    app = create_app(settings)
    log.info(
        "ingress_starting", port=settings.ingress.port, bootstrap=settings.kafka.bootstrap_servers
    )
    from ingress.serving import serve_until_stopped  # only the command serves

    grace = settings.ingress.produce_timeout + 1
    serving = serve_until_stopped(
        app, settings.ingress.host, settings.ingress.port, grace, reuse_port=reuse_port
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serving)
