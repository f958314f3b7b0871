"""Mailgun: the signature travels in the body, ``{"signature": {"timestamp", "token",
"signature"}, "event-data": {...}}`` (legacy webhooks and routes: the same three form
fields). HMAC-SHA256 keyed with the HTTP webhook signing key over ``{timestamp}{token}``,
hex.

The signature does not cover the event itself, so the token is the defence against a
captured signature being reused on another body: the verifier returns it as the nonce
that the ingress refuses to accept twice for different events.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hookstream.core.signatures.base import (
    Reason,
    SigningKey,
    VerificationError,
    Verified,
    active_keys,
    any_matches,
)
from hookstream.core.signatures.body_fields import form_fields, json_document, text_field
from hookstream.core.signatures.parsing import check_timestamp, hexdecode_strict


def _signature_fields(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    content_type = (headers.get("Content-Type") or "").lower()
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/")):
        return dict(form_fields(body))
    doc = json_document(body, "Mailgun's signature")
    found = doc.get("signature") if isinstance(doc, dict) else None
    if not isinstance(found, dict):
        raise VerificationError(Reason.MISSING_SIGNATURE, "the body has no signature object")
    return found


def mailgun_digest(key: bytes, timestamp: str, token: str) -> str:
    """The hex signature Mailgun computes for one timestamp and token."""
    return hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()


def sign_mailgun(key: bytes, timestamp: int, token: str, body: bytes) -> bytes:
    """`body` (a JSON object) with the ``signature`` object Mailgun adds."""
    doc = json.loads(body) if body.strip() else {}
    if not isinstance(doc, dict):
        doc = {"event-data": doc}
    stamp = str(timestamp)
    doc["signature"] = {
        "timestamp": stamp,
        "token": token,
        "signature": mailgun_digest(key, stamp, token),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class MailgunVerifier:
    """Mailgun's timestamp-and-token signature, read from the body."""

    keys: tuple[SigningKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        fields = _signature_fields(headers, body)
        raw = text_field(fields.get("signature"))
        token = text_field(fields.get("token"))
        if not raw or not token:
            raise VerificationError(Reason.MISSING_SIGNATURE, "signature and token are required")
        stamp = text_field(fields.get("timestamp"))
        timestamp = check_timestamp(stamp, now, self.tolerance)
        offered = hexdecode_strict(raw)
        content = f"{stamp}{token}".encode("utf-8", "surrogatepass")
        expected = [
            hmac.new(k, content, hashlib.sha256).digest() for k in active_keys(self.keys, now)
        ]
        if not any_matches(expected, [offered]):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp, nonce=token)
