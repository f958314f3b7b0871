"""Developer tools behind `hookstream send` and `hookstream demo`."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from hookstream.config import Settings, SourceSettings
from hookstream.core.signatures import SignedPayload, sign_payload
from hookstream.core.signatures.asymmetric import new_keypair
from hookstream.errors import ConfigError


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


def _base_url(settings: Settings, url: str | None) -> str:
    return (url or f"http://localhost:{settings.ingress.port}").rstrip("/")


def send_one(
    settings: Settings,
    name: str,
    body: bytes | None,
    event_id: str | None,
    event_type: str,
    url: str | None,
) -> tuple[int, str]:
    """POST one signed event; return the status and the answer's text."""
    source = _source(settings, name)
    event_id = event_id or f"evt_{uuid.uuid4().hex[:20]}"
    body = (
        body if body is not None else sample_body(event_id, event_type, "cus_demo", source.scheme)
    )
    signed = signed_request(source, body, event_id, event_type)
    target = f"{_base_url(settings, url)}/webhooks/{name}" + (
        f"?{signed.query}" if signed.query else ""
    )

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


def run_demo(
    settings: Settings, name: str, count: int, duplicates: float, fail_rate: float, wait: float
) -> dict[str, Any]:
    """Send `count` events (a share twice) and report what the pipeline made of them."""
    source = _source(settings, name)
    sinks = [
        d
        for d in settings.destinations.values()
        if d.url and (d.sources is None or name in d.sources)
    ]
    if not sinks:
        raise ConfigError("destinations", f"the demo needs a url destination for source {name!r}")
    target = urlsplit(str(sinks[0].url))
    before = _worker_counts(settings)
    rng = random.Random()
    sink = DemoSink(fail_rate, rng)
    sent: dict[str, int] = {}

    async def burst() -> dict[str, Any]:
        app = web.Application()
        app.router.add_post(target.path or "/", sink.receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, target.hostname, target.port or 80).start()
        events = []
        for i in range(count):
            event_id = f"demo_{uuid.uuid4().hex[:16]}"
            body = sample_body(event_id, "demo.event", f"cus_{i % 20}", source.scheme)
            events.append((event_id, body))
            if rng.random() < duplicates:
                events.append((event_id, body))
        answers: dict[int, int] = {}
        limit = asyncio.Semaphore(32)
        async with aiohttp.ClientSession() as session:

            async def post(event_id: str, body: bytes) -> None:
                async with limit:
                    signed = signed_request(source, body, event_id, "demo.event")
                    query = f"?{signed.query}" if signed.query else ""
                    async with session.post(
                        f"{_base_url(settings, None)}/webhooks/{name}{query}",
                        data=signed.body,
                        headers=signed.headers,
                    ) as response:
                        answers[response.status] = answers.get(response.status, 0) + 1
                        if response.status == 202:
                            sent[event_id] = sent.get(event_id, 0) + 1

            await asyncio.gather(*(post(e, b) for e, b in events))
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and len(sink.delivered) < len(sent):
                await asyncio.sleep(0.25)
        await runner.cleanup()
        return {"answers": answers, "requests": len(events)}

    result = asyncio.run(burst())
    after = _worker_counts(settings)

    def delta(outcome: str) -> int:
        return int(after.get(outcome, 0.0) - before.get(outcome, 0.0))

    return {
        "requests": result["requests"],
        "answers": dict(sorted(result["answers"].items())),
        "accepted": sum(sent.values()),
        "distinct": len(sent),
        "delivered": len(sink.delivered),
        "redelivered": sum(n - 1 for n in sink.delivered.values()),
        "sink_failures": sink.failed,
        "deduped": delta("duplicate"),
        "retried": delta("retry_scheduled"),
        "dead_lettered": delta("dead_lettered"),
        "failed": delta("failed"),
    }
