"""Developer tools behind `hookstream send` and `hookstream demo`."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import SplitResult, unquote, urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from hookstream.config import Settings, SourceSettings
from hookstream.core.signatures.asymmetric import new_keypair
from hookstream.errors import ConfigError
from hookstream.ops.audit import histories, summarize
from hookstream.sources import SignedPayload, sign_payload


def sample_body(event_id: str, event_type: str, entity: str, scheme: str = "standard") -> bytes:
    """A small event in the shape `scheme`'s provider sends (default {id, type, data})."""
    created = int(time.time())
    if scheme == "twilio":  # Twilio posts forms
        return urlencode(
            {"AccountSid": "AC" + "0" * 32, "MessageSid": entity, "MessageStatus": event_type}
        ).encode()
    doc: object = _PROVIDER_SHAPES.get(scheme, _standard_shape)(event_id, event_type, entity)
    if isinstance(doc, dict) and scheme in ("standard", "hmac"):
        doc["created"] = created
    return json.dumps(doc, separators=(",", ":")).encode()


def _standard_shape(event_id: str, event_type: str, entity: str) -> object:
    return {"id": event_id, "type": event_type, "data": {"customer": entity}}


def _adyen_shape(event_id: str, event_type: str, entity: str) -> object:
    item = {
        "pspReference": event_id,
        "merchantAccountCode": "DemoMerchant",
        "merchantReference": entity,
        "amount": {"value": 1000, "currency": "EUR"},
        "eventCode": event_type,
        "success": "true",
    }
    return {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}


# Where each provider puts the id, type and entity (the defaults in core.events).
_PROVIDER_SHAPES: dict[str, Callable[[str, str, str], object]] = {
    "slack": lambda i, t, e: {
        "type": "event_callback",
        "event_id": i,
        "team_id": e,
        "event": {"type": t},
    },
    "stripe": lambda i, t, e: {
        "id": i,
        "object": "event",
        "type": t,
        "data": {"object": {"customer": e}},
    },
    "square": lambda i, t, e: {"event_id": i, "type": t, "data": {"type": "payment", "id": e}},
    "discord": lambda i, t, e: {
        "id": i,
        "type": 2,
        "application_id": "0",
        "token": "demo",
        "version": 1,
        "guild_id": e,
        "data": {"name": t},
    },
    "sendgrid": lambda i, t, e: [{"event": t, "sg_event_id": i, "sg_message_id": e}],
    "mailgun": lambda i, t, e: {"event-data": {"id": i, "event": t, "recipient": e}},
    "zoom": lambda i, t, e: {"event": t, "payload": {"object": {"uuid": e, "id": i}}},
    "twitch": lambda i, t, e: {
        "subscription": {"type": t, "version": "1"},
        "event": {"broadcaster_user_id": e},
    },
    "paddle": lambda i, t, e: {"event_id": i, "event_type": t, "data": {"customer_id": e}},
    "linear": lambda i, t, e: {"action": "create", "type": t, "data": {"id": e}},
    "intercom": lambda i, t, e: {"id": i, "topic": t, "data": {"item": {"id": e}}},
    "bitbucket": lambda i, t, e: {"repository": {"full_name": e}},
    "gitlab": lambda i, t, e: {"object_kind": t, "project": {"path_with_namespace": e}},
    "adyen": _adyen_shape,
}


def signed_request(
    source: SourceSettings, body: bytes, event_id: str, event_type: str
) -> SignedPayload:
    """The request as the source's provider sends it: content type, signature headers,
    any id/type headers the source reads, the body and query as signed."""
    signed = sign_payload(source, body, event_id, time.time(), event_type)
    headers = {"Content-Type": "application/json", **signed.headers}
    for locator, value in ((source.event_id, event_id), (source.event_type, event_type)):
        if locator and locator.startswith("header:"):
            headers[locator.removeprefix("header:")] = value
    return replace(signed, headers=headers)


def new_keypair_config(scheme: str) -> dict[str, object]:
    """A key pair for trying a public-key source locally, as config keys."""
    public, private = new_keypair(scheme)
    return {"public_keys": [public], "signing_key": private}


def _source(settings: Settings, name: str) -> SourceSettings:
    if name not in settings.sources:
        known = ", ".join(sorted(settings.sources)) or "none"
        raise ConfigError("sources", f"no source named {name!r} (configured: {known})")
    return settings.sources[name]


def local_ingress(settings: Settings) -> str:
    """The base URL of the ingress this config runs locally."""
    return f"http://localhost:{settings.ingress.port}"


def webhook_url(url: str, source: str) -> str:
    """The URL to POST `source`'s webhooks to, from the ingress's base URL or the full
    `.../webhooks/SOURCE` URL; ValueError if the URL names another source."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    _, found, named = path.rpartition("/webhooks/")
    if path.endswith("/webhooks"):
        path = f"{path}/{source}"
    elif not found or "/" in named:
        path = f"{path}/webhooks/{source}"
    elif unquote(named) != source:
        raise ValueError(f"{url} is the URL of source {unquote(named)!r}, not of {source!r}")
    return urlunsplit(parts._replace(path=path))


def send_one(
    settings: Settings,
    name: str,
    body: bytes | None,
    event_id: str | None,
    event_type: str,
    url: str,
) -> tuple[int, str]:
    """POST one signed event to `url` (see `webhook_url`); return the status and the answer."""
    source = _source(settings, name)
    event_id = event_id or f"evt_{uuid.uuid4().hex[:20]}"
    body = (
        body if body is not None else sample_body(event_id, event_type, "cus_demo", source.scheme)
    )
    signed = signed_request(source, body, event_id, event_type)
    target = url + (f"?{signed.query}" if signed.query else "")

    async def post() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, data=signed.body, headers=signed.headers) as response,
        ):
            return response.status, await response.text()

    try:
        return asyncio.run(post())
    except aiohttp.ClientConnectionError as exc:
        return 599, f"cannot reach the ingress: {exc}"


# --- demo ---


class DemoSink:
    """The demo's destination: fails a share of attempts with 503, remembers the rest."""

    def __init__(self, fail_rate: float, rng: random.Random) -> None:
        self.fail_rate = fail_rate
        self.rng = rng
        self.delivered: dict[str, int] = {}
        self.failed = 0

    async def receive(self, request: web.Request) -> web.Response:
        await request.read()
        if self.rng.random() < self.fail_rate:
            self.failed += 1
            return web.Response(status=503)
        event_id = request.headers.get("webhook-id", "")
        self.delivered[event_id] = self.delivered.get(event_id, 0) + 1
        return web.Response(status=204)


def _worker_counts(settings: Settings) -> dict[str, float]:
    async def scrape() -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://localhost:{settings.worker.port}/metrics",
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response,
        ):
            return await response.text()

    try:
        text = asyncio.run(scrape())
    except (aiohttp.ClientError, TimeoutError):
        return {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "hookstream_events":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    outcome = sample.labels["outcome"]
                    counts[outcome] = counts.get(outcome, 0.0) + sample.value
    return counts


@dataclass(frozen=True)
class Progress:
    """How far the demo is while it waits for deliveries."""

    delivered: int
    expected: int
    elapsed: float
    wait: float


@dataclass(frozen=True)
class Trail:
    """What the audit trail says of one event."""

    state: str  # accepted | processing | retrying | delivered | dead_lettered
    attempts: int
    tier: int | None  # the retry tier it waits in, while retrying
    trace_id: str | None

    @classmethod
    def of(cls, event_id: str, steps: list[dict[str, Any]]) -> Trail:
        """From the event's audit steps, oldest first."""
        summary = summarize(event_id, steps)
        tiers = [int(s["tier"]) for s in steps if s["kind"] == "retry_scheduled" and "tier" in s]
        tier = tiers[-1] if summary["state"] == "retrying" and tiers else None
        return cls(summary["state"], summary["attempts"], tier, summary["trace_id"])


def _place(accepted: bool, trail: Trail | None) -> tuple[int, int, str]:
    """Where an event the demo's sink did not get is: (rank, tier, words)."""
    if not accepted:
        return 0, 0, "not accepted by the ingress"
    if trail is None or trail.state == "accepted":
        return 1, 0, "not yet seen by the worker"
    if trail.state == "processing":
        return 2, 0, "being processed by the worker"
    if trail.state == "retrying":
        return 3, trail.tier or 0, f"retrying in tier {trail.tier}"
    if trail.state == "dead_lettered":
        return 4, 0, "dead-lettered"
    return 5, 0, "delivered, but not to the demo's sink"


def whereabouts(
    events: Iterable[str],
    accepted: Collection[str],
    delivered: Collection[str],
    trails: Mapping[str, Trail],
) -> dict[str, list[str]]:
    """Each event the demo's sink did not get, by where it is (places in pipeline order)."""
    found: dict[tuple[int, int, str], list[str]] = {}
    for event_id in events:
        if event_id not in delivered:
            place = _place(event_id in accepted, trails.get(event_id))
            found.setdefault(place, []).append(event_id)
    return {words: ids for (_, _, words), ids in sorted(found.items())}


def pick_sample(events: Iterable[str], trails: Mapping[str, Trail]) -> str | None:
    """An event worth looking up: delivered after a retry if any, else delivered, else seen."""

    def interest(event_id: str) -> tuple[bool, bool, bool]:
        trail = trails.get(event_id)
        done = trail is not None and trail.state == "delivered"
        return done and trail is not None and trail.attempts > 1, done, trail is not None

    return max(events, key=interest, default=None)


@dataclass(frozen=True)
class DemoReport:
    """What became of the demo's events."""

    counts: dict[str, Any]  # requests, answers, accepted, delivered, deduped, retried, ...
    events: int  # distinct events made
    undelivered: dict[str, list[str]]  # where each event the sink did not get is
    sample: str | None
    trails: dict[str, Trail]


@dataclass
class _Burst:
    answers: dict[int, int] = field(default_factory=dict)
    unreachable: int = 0
    accepted: dict[str, int] = field(default_factory=dict)  # event id -> 202 answers


def _demo_events(
    scheme: str, count: int, duplicates: float, rng: random.Random
) -> list[tuple[str, bytes]]:
    """`count` distinct events, a `duplicates` share of them sent twice."""
    events = []
    for i in range(count):
        event_id = f"demo_{uuid.uuid4().hex[:16]}"
        body = sample_body(event_id, "demo.event", f"cus_{i % 20}", scheme)
        events.append((event_id, body))
        if rng.random() < duplicates:
            events.append((event_id, body))
    return events


async def _post_all(url: str, source: SourceSettings, events: list[tuple[str, bytes]]) -> _Burst:
    burst = _Burst()
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as session:

        async def post(event_id: str, body: bytes) -> None:
            signed = signed_request(source, body, event_id, "demo.event")
            target = url + (f"?{signed.query}" if signed.query else "")
            async with limit:
                try:
                    async with session.post(
                        target, data=signed.body, headers=signed.headers
                    ) as response:
                        status = response.status
                except aiohttp.ClientError:
                    burst.unreachable += 1
                    return
            burst.answers[status] = burst.answers.get(status, 0) + 1
            if status == 202:
                burst.accepted[event_id] = burst.accepted.get(event_id, 0) + 1

        await asyncio.gather(*(post(e, b) for e, b in events))
    return burst


async def _wait_for_deliveries(
    sink: DemoSink, expected: int, wait: float, progress: Callable[[Progress], None] | None
) -> None:
    """Until the sink has every accepted event or `wait` seconds passed; progress each second."""
    started = time.monotonic()
    reported = started
    while (elapsed := time.monotonic() - started) < wait and len(sink.delivered) < expected:
        await asyncio.sleep(min(0.25, wait - elapsed))
        if progress is not None and time.monotonic() - reported >= 1.0:
            reported = time.monotonic()
            progress(Progress(len(sink.delivered), expected, reported - started, wait))


async def _burst(
    settings: Settings,
    name: str,
    sink: DemoSink,
    events: list[tuple[str, bytes]],
    wait: float,
    progress: Callable[[Progress], None] | None,
) -> _Burst:
    target = _demo_target(settings, name)
    app = web.Application()
    app.router.add_post(target.path or "/", sink.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, target.hostname, target.port or 80).start()
        url = webhook_url(local_ingress(settings), name)
        burst = await _post_all(url, settings.sources[name], events)
        await _wait_for_deliveries(sink, len(burst.accepted), wait, progress)
    finally:
        await runner.cleanup()
    return burst


def _demo_target(settings: Settings, name: str) -> SplitResult:
    """Where the demo serves its sink: the first url destination that takes `name`."""
    for destination in settings.destinations.values():
        if destination.url and (destination.sources is None or name in destination.sources):
            return urlsplit(str(destination.url))
    raise ConfigError("destinations", f"the demo needs a url destination for source {name!r}")


def run_demo(
    settings: Settings,
    name: str,
    count: int,
    duplicates: float,
    fail_rate: float,
    wait: float,
    progress: Callable[[Progress], None] | None = None,
) -> DemoReport:
    """Send `count` events (a share twice) and report what the pipeline made of them."""
    source = _source(settings, name)
    _demo_target(settings, name)  # a config error before anything is sent
    before = _worker_counts(settings)
    rng = random.Random()
    sink = DemoSink(fail_rate, rng)
    events = _demo_events(source.scheme, count, duplicates, rng)
    burst = asyncio.run(_burst(settings, name, sink, events, wait, progress))
    after = _worker_counts(settings)
    audited = histories(settings, set(burst.accepted), name) if burst.accepted else {}
    trails = {event_id: Trail.of(event_id, steps) for event_id, steps in audited.items()}

    def delta(outcome: str) -> int:
        return int(after.get(outcome, 0.0) - before.get(outcome, 0.0))

    distinct = list(dict.fromkeys(event_id for event_id, _ in events))
    counts = {
        "requests": len(events),
        "answers": dict(sorted(burst.answers.items())),
        **({"unreachable": burst.unreachable} if burst.unreachable else {}),
        "accepted": sum(burst.accepted.values()),
        "distinct": len(burst.accepted),
        "delivered": len(sink.delivered),
        "redelivered": sum(n - 1 for n in sink.delivered.values()),
        "sink_failures": sink.failed,
        "deduped": delta("duplicate"),
        "retried": delta("retry_scheduled"),
        "dead_lettered": delta("dead_lettered"),
    }
    return DemoReport(
        counts,
        len(distinct),
        whereabouts(distinct, burst.accepted, sink.delivered, trails),
        pick_sample(burst.accepted, trails),
        trails,
    )
