"""Handshakes: requests a sender makes to check the endpoint before (or instead of)
sending events, answered as each expects. Each is asked only after the request verified,
so an unsigned handshake is refused like any other request.

- Slack ``url_verification``: echo ``challenge`` as JSON.
- Discord interactions PING (``type: 1``): ``{"type": 1}``; Discord webhook events PING
  (no interaction ``id``/``token``, ``type: 0``): 204.
- Zoom ``endpoint.url_validation``: ``{"plainToken", "encryptedToken"}``, the token's
  HMAC-SHA256 (hex) under the secret the request was signed with.
- Twitch ``webhook_callback_verification``: the challenge as plain text.

And one acknowledgement: Discord expects an interaction answered within three seconds
with an interaction response, so an accepted interaction is answered "deferred"
(``{"type": 5}``, or ``{"type": 6}`` for components); the handler follows up later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hookstream.core.signatures.base import (
    HandshakeAnswer,
    SigningKey,
    VerificationError,
    active_keys,
)
from hookstream.core.signatures.hmac_schemes import ZOOM
from hookstream.core.signatures.parsing import header_text
from hookstream.core.signatures.twitch import MESSAGE_TYPE

Handshake = Callable[[Mapping[str, str], bytes, float], HandshakeAnswer | None]


def _document(body: bytes, marker: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, only when it could be a handshake (cheap check first)."""
    if marker not in body:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _json(status: int, doc: dict[str, Any]) -> HandshakeAnswer:
    return HandshakeAnswer(status, json.dumps(doc).encode())


def _printable(value: Any) -> str | None:
    """A challenge that can be echoed: a non-empty string that encodes as UTF-8."""
    if not isinstance(value, str) or not value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def slack_challenge(headers: Mapping[str, str], body: bytes, now: float) -> HandshakeAnswer | None:
    """Slack's ``url_verification``."""
    doc = _document(body, b"url_verification")
    if doc is None or doc.get("type") != "url_verification":
        return None
    challenge = _printable(doc.get("challenge"))
    return None if challenge is None else _json(200, {"challenge": challenge})


def _discord_webhook_event(doc: dict[str, Any]) -> bool:
    """A webhook event (``{"version", "application_id", "type", "event"}``) rather than an
    interaction: interactions always carry their ``id`` and ``token`` (and a version too)."""
    return "event" in doc or ("id" not in doc and "token" not in doc)


def discord_ping(headers: Mapping[str, str], body: bytes, now: float) -> HandshakeAnswer | None:
    """Discord's PING, for an interactions endpoint or a webhook events endpoint."""
    doc = _document(body, b"type")
    if doc is None:
        return None
    kind = doc.get("type")
    if _discord_webhook_event(doc):
        return HandshakeAnswer(204, b"") if kind == 0 else None
    return _json(200, {"type": 1}) if kind == 1 else None


def discord_deferred(body: bytes) -> HandshakeAnswer | None:
    """The interaction response for an accepted interaction; None for webhook events."""
    doc = _document(body, b"type")
    if doc is None or _discord_webhook_event(doc):
        return None
    kind = doc.get("type")
    if kind in (2, 5):  # application command, modal submit: "thinking...", then a follow-up
        return _json(200, {"type": 5})
    if kind == 3:  # message component: acknowledge, edit the message later
        return _json(200, {"type": 6})
    return None


def _text(headers: Mapping[str, str], name: str) -> str | None:
    """A header's text, or None when absent or not valid UTF-8: a handshake answers or passes,
    it never raises."""
    try:
        return header_text(headers, name)
    except VerificationError:
        return None


def twitch_challenge(headers: Mapping[str, str], body: bytes, now: float) -> HandshakeAnswer | None:
    """Twitch's ``webhook_callback_verification``: the challenge, as text."""
    if _text(headers, MESSAGE_TYPE) != "webhook_callback_verification":
        return None
    doc = _document(body, b"challenge")
    challenge = _printable(doc.get("challenge")) if doc is not None else None
    if challenge is None:
        return None
    return HandshakeAnswer(200, challenge.encode(), "text/plain")


@dataclass(frozen=True, slots=True)
class ZoomValidation:
    """Zoom's ``endpoint.url_validation``, answered with the secret that signed it."""

    keys: tuple[SigningKey, ...]

    def __call__(
        self, headers: Mapping[str, str], body: bytes, now: float
    ) -> HandshakeAnswer | None:
        doc = _document(body, b"endpoint.url_validation")
        if doc is None or doc.get("event") != "endpoint.url_validation":
            return None
        payload = doc.get("payload")
        token = _printable(payload.get("plainToken")) if isinstance(payload, dict) else None
        if token is None:
            return None
        key = self._signing_key(headers, body, now)
        encrypted = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
        return _json(200, {"plainToken": token, "encryptedToken": encrypted})

    def _signing_key(self, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
        """The active secret whose signature the (already verified) request carries."""
        offered = (_text(headers, ZOOM.header) or "").encode()
        stamp = _text(headers, ZOOM.timestamp_header or "") or ""
        keys = active_keys(self.keys, now)
        for key in keys:
            if hmac.compare_digest(ZOOM.signature(key, body, stamp).encode(), offered):
                return key
        return keys[0]
