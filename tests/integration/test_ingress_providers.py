"""The provider schemes through the real ingress and broker: accepted once as the
provider signs, refused with nothing produced otherwise; handshakes answered exactly as
each sender expects and never produced; Mailgun's token refused on a second event."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from hookstream.config import Settings
from hookstream.core.signatures.asymmetric import new_keypair
from hookstream.devtools import sample_body, send_one, webhook_url
from hookstream.sources import SignedPayload, sign_payload
from tests.integration.test_ingress_signatures import records

pytestmark = pytest.mark.integration

PUBLIC = "https://hooks.example.com/webhooks"
DISCORD = new_keypair("discord")
SENDGRID = new_keypair("sendgrid")
SOURCES: dict[str, dict[str, Any]] = {
    "twilio": {"scheme": "twilio", "secrets": ["tw-token"], "public_url": f"{PUBLIC}/twilio"},
    "square": {"scheme": "square", "secrets": ["sq-key"], "public_url": f"{PUBLIC}/square"},
    "discord": {"scheme": "discord", "public_keys": [DISCORD[0]], "signing_key": DISCORD[1]},
    "sendgrid": {"scheme": "sendgrid", "public_keys": [SENDGRID[0]], "signing_key": SENDGRID[1]},
    "mailgun": {"scheme": "mailgun", "secrets": ["mg-key"]},
    "zoom": {"scheme": "zoom", "secrets": ["zoom-secret"]},
    "twitch": {"scheme": "twitch", "secrets": ["twitch-secret"]},
    "paddle": {"scheme": "paddle", "secrets": ["pdl_ntfset_secret"]},
    "linear": {"scheme": "linear", "secrets": ["lin_wh_secret"]},
    "intercom": {"scheme": "intercom", "secrets": ["ic-secret"]},
    "bitbucket": {"scheme": "bitbucket", "secrets": ["bb-secret"]},
    "gitlab": {"scheme": "gitlab", "secrets": ["gl-token"]},
    "adyen": {
        "scheme": "adyen",
        "secrets": ["44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"],
    },
}


@pytest.fixture
async def gateway(
    make_settings: Callable[..., tuple[Settings, Any]],
    ingress_url: Callable[[Settings], Awaitable[str]],
) -> AsyncIterator[tuple[Settings, str, aiohttp.ClientSession]]:
    settings, _ = make_settings(sources=SOURCES)
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        yield settings, base, session


async def post(
    session: aiohttp.ClientSession, base: str, source: str, signed: SignedPayload
) -> tuple[int, str, str]:
    query = f"?{signed.query}" if signed.query else ""
    headers = {"Content-Type": "application/json", **signed.headers}
    url = f"{base}/webhooks/{source}{query}"
    async with session.post(url, data=signed.body, headers=headers) as response:
        return response.status, response.content_type, await response.text()


def signed(
    settings: Settings, source: str, event_id: str, body: bytes | None = None
) -> SignedPayload:
    scheme = settings.sources[source].scheme
    raw = body if body is not None else sample_body(event_id, "thing.happened", "ent_1", scheme)
    return sign_payload(settings.sources[source], raw, event_id, time.time(), "thing.happened")


def tamper(source: str, request: SignedPayload) -> SignedPayload:
    """Change something the scheme signs (GitLab signs nothing: change its token)."""
    if source == "gitlab":
        return replace(request, headers={"X-Gitlab-Token": "gl-token-forged"})
    if source == "mailgun":
        doc = json.loads(request.body)
        doc["signature"]["token"] += "x"
        return replace(request, body=json.dumps(doc).encode())
    if source == "adyen":
        return replace(request, body=request.body.replace(b'"value":1000', b'"value":1001'))
    if source == "twilio":
        return replace(request, body=request.body.replace(b"ent_1", b"ent_2"))
    return replace(request, body=request.body.replace(b"ent_1", b"ent_2"))


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_signed_as_the_provider_signs_is_produced_once(source: str, gateway: Any) -> None:
    settings, base, session = gateway
    request = signed(settings, source, f"evt_{source}_1")
    status, content_type, text = await post(session, base, source, request)
    if source == "discord":  # an interaction: answered "deferred", as Discord requires
        assert (status, json.loads(text)) == (200, {"type": 5})
    else:
        assert status == 202, text
        assert json.loads(text)["status"] == "accepted"

    status, content_type, text = await post(session, base, source, tamper(source, request))
    assert status == 401, text
    assert content_type == "application/problem+json"
    assert json.loads(text)["reason"] == "bad_signature"
    # Unsigned: no signature headers, and the body as it was before signing (Mailgun and
    # Adyen sign inside it).
    raw = sample_body(f"evt_{source}_1", "thing.happened", "ent_1", settings.sources[source].scheme)
    unsigned = SignedPayload(
        {}, raw if source in ("mailgun", "adyen") else request.body, request.query
    )
    status, _, text = await post(session, base, source, unsigned)
    assert (status, json.loads(text)["reason"]) == (401, "missing_signature")

    status, _, text = await post(session, base, source, request)  # a replay
    assert status == 200, text
    if source != "discord":
        assert json.loads(text)["duplicate"] is True
    produced = records(settings)
    assert len(produced) == 1
    assert dict(produced[0].headers())["hookstream-source"] == source.encode()


async def test_twilio_behind_a_proxy_verifies_against_its_public_url(gateway: Any) -> None:
    settings, base, session = gateway
    request = signed(settings, "twilio", "evt_json", b'{"sid": "SM1"}')  # JSON: hash in URL
    assert request.query.startswith("bodySHA256=")
    status, _, text = await post(session, base, "twilio", request)
    assert status == 202, text
    moved = settings.sources["twilio"].model_copy(update={"public_url": base + "/webhooks/twilio"})
    wrong = sign_payload(moved, b'{"sid": "SM2"}', "evt_local", time.time())
    status, _, text = await post(session, base, "twilio", wrong)
    assert (status, json.loads(text)["reason"]) == (401, "bad_signature")


async def test_mailgun_token_reused_on_another_event_is_refused(gateway: Any) -> None:
    settings, base, session = gateway
    first = signed(settings, "mailgun", "mg_1")
    status, _, text = await post(session, base, "mailgun", first)
    assert status == 202, text
    # Mailgun's signature covers timestamp and token only: graft it onto another event.
    doc = json.loads(first.body)
    doc["event-data"]["id"] = "mg_forged"
    forged = replace(first, body=json.dumps(doc).encode())
    status, _, text = await post(session, base, "mailgun", forged)
    assert (status, json.loads(text)["reason"]) == (401, "replayed_signature")
    assert len(records(settings)) == 1


async def test_handshakes_are_answered_exactly_and_not_produced(gateway: Any) -> None:
    settings, base, session = gateway
    zoom = json.dumps(
        {"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event": "endpoint.url_validation"}
    ).encode()
    status, content_type, text = await post(
        session, base, "zoom", signed(settings, "zoom", "", zoom)
    )
    expected = hmac.new(b"zoom-secret", b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert (status, content_type) == (200, "application/json")
    assert json.loads(text) == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}

    challenge = json.dumps({"challenge": "pogchamp-kappa", "subscription": {"type": "x"}}).encode()
    twitch = signed(settings, "twitch", "m1", challenge)
    twitch.headers["Twitch-Eventsub-Message-Type"] = "webhook_callback_verification"
    status, content_type, text = await post(session, base, "twitch", twitch)
    assert (status, content_type, text) == (200, "text/plain", "pogchamp-kappa")

    ping = signed(
        settings,
        "discord",
        "",
        b'{"id": "p1", "type": 1, "application_id": "a", "token": "t", "version": 1}',
    )
    status, _, text = await post(session, base, "discord", ping)
    assert (status, json.loads(text)) == (200, {"type": 1})
    events_ping = signed(
        settings, "discord", "", b'{"version": 1, "application_id": "a", "type": 0}'
    )
    status, _, text = await post(session, base, "discord", events_ping)
    assert (status, text) == (204, "")

    # Unsigned, a handshake is refused like any other request.
    status, _, text = await post(session, base, "discord", SignedPayload({}, ping.body))
    assert status == 401
    assert records(settings) == []


async def test_hookstream_send_signs_as_every_provider(gateway: Any) -> None:
    settings, base, _ = gateway
    for source in sorted(SOURCES):
        status, answer = await asyncio.to_thread(
            send_one,
            settings,
            source,
            None,
            f"evt_send_{source}",
            "thing.happened",
            webhook_url(base, source),
        )
        assert status == (200 if source == "discord" else 202), (source, answer)
    assert len(records(settings)) == len(SOURCES)
