"""Handshakes are answered exactly as each sender expects, and only handshakes are."""

from __future__ import annotations

import hashlib
import hmac
import json

from multidict import CIMultiDict

from hookstream.config import SourceSettings
from hookstream.core.signatures import HandshakeAnswer
from hookstream.sources import acknowledgement, build_handshake, build_verifier, sign_payload

NOW = 1_700_000_000.0


def answer(source: SourceSettings, headers: dict[str, str], body: bytes) -> HandshakeAnswer | None:
    handshake = build_handshake(source)
    assert handshake is not None
    return handshake(CIMultiDict(headers), body, NOW)


def test_zoom_url_validation_answers_the_hmac_of_the_plain_token() -> None:
    # Zoom's documented exchange: encryptedToken = hex HMAC-SHA256(secret, plainToken).
    body = json.dumps(
        {
            "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
            "event_ts": 1654503849680,
            "event": "endpoint.url_validation",
        }
    ).encode()
    source = SourceSettings(scheme="zoom", secrets=["old-secret", "new-secret"])
    signer = SourceSettings(scheme="zoom", secrets=["new-secret"])
    headers = sign_payload(signer, body, "", NOW).headers
    build_verifier(source).verify(CIMultiDict(headers), body, NOW)
    found = answer(source, headers, body)
    assert found is not None
    assert (found.status, found.content_type) == (200, "application/json")
    expected = hmac.new(b"new-secret", b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert json.loads(found.body) == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": expected,
    }
    event = b'{"event": "meeting.started", "payload": {"object": {"id": 1}}}'
    assert answer(source, headers, event) is None


def test_twitch_verification_echoes_the_challenge_as_text() -> None:
    source = SourceSettings(scheme="twitch", secrets=["s"])
    challenge = "pogchamp-kappa-360noscope-vohiyo"
    body = json.dumps(
        {"challenge": challenge, "subscription": {"type": "channel.follow", "version": "1"}}
    ).encode()
    headers = {"Twitch-Eventsub-Message-Type": "webhook_callback_verification"}
    assert answer(source, headers, body) == HandshakeAnswer(200, challenge.encode(), "text/plain")
    headers = {"Twitch-Eventsub-Message-Type": "notification"}
    assert answer(source, headers, body) is None


def test_discord_pings_for_interactions_and_for_webhook_events() -> None:
    source = SourceSettings(scheme="discord", public_keys=["00" * 32])
    # Interactions carry id, token and a version; webhook events carry no id or token.
    interaction_ping = b'{"id": "1", "type": 1, "application_id": "2", "token": "t", "version": 1}'
    assert answer(source, {}, interaction_ping) == HandshakeAnswer(200, b'{"type": 1}')
    ping = b'{"version": 1, "application_id": "2", "type": 0}'
    assert answer(source, {}, ping) == HandshakeAnswer(204, b"")
    event = b'{"version": 1, "application_id": "2", "type": 1, "event": {"type": "X"}}'
    assert answer(source, {}, event) is None
    assert answer(source, {}, b'{"id": "1", "type": 2, "token": "t", "version": 1}') is None


def test_discord_interactions_are_acknowledged_deferred() -> None:
    source = SourceSettings(scheme="discord", public_keys=["00" * 32])
    command = acknowledgement(
        source, b'{"id": "1", "type": 2, "token": "t", "version": 1, "data": {"name": "ping"}}'
    )
    assert command is not None
    assert json.loads(command.body) == {"type": 5}
    component = acknowledgement(source, b'{"id": "1", "type": 3, "token": "t", "version": 1}')
    assert component is not None
    assert json.loads(component.body) == {"type": 6}
    assert acknowledgement(source, b'{"version": 1, "type": 1, "event": {}}') is None
    stripe = SourceSettings(scheme="stripe", secrets=["s"])
    assert acknowledgement(stripe, b'{"id": "1", "type": 2}') is None


def test_slack_challenge_through_the_hook() -> None:
    source = SourceSettings(scheme="slack", secrets=["s"])
    body = b'{"token": "t", "challenge": "abc", "type": "url_verification"}'
    assert answer(source, {}, body) == HandshakeAnswer(200, b'{"challenge": "abc"}')


def test_schemes_without_a_handshake_have_none() -> None:
    for scheme in ("stripe", "github", "paddle", "gitlab", "mailgun"):
        assert build_handshake(SourceSettings(scheme=scheme, secrets=["s"])) is None
