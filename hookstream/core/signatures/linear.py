"""Linear: ``Linear-Signature: <hex>``, HMAC-SHA256 of the raw body, and the send time
inside the signed body as ``webhookTimestamp`` (Unix milliseconds), checked against the
tolerance once the signature holds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from hookstream.core.signatures.base import (
    Reason,
    SigningKey,
    VerificationError,
    Verified,
    active_keys,
    any_matches,
)
from hookstream.core.signatures.parsing import check_window, header_text, hexdecode_strict

LINEAR_HEADER = "Linear-Signature"


def linear_signature(key: bytes, body: bytes) -> str:
    """The ``Linear-Signature`` value for `body`."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def stamp_linear(body: bytes, now: float) -> bytes:
    """`body` (a JSON object) with ``webhookTimestamp`` set to `now`, as Linear sends it."""
    doc = json.loads(body) if body.strip() else {}
    if not isinstance(doc, dict):
        doc = {"data": doc}
    doc["webhookTimestamp"] = int(now * 1000)
    return json.dumps(doc, separators=(",", ":")).encode()


def _body_timestamp(body: bytes) -> float:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise VerificationError(Reason.MISSING_TIMESTAMP, "the body is not JSON") from None
    value = doc.get("webhookTimestamp") if isinstance(doc, dict) else None
    if value is None:
        raise VerificationError(Reason.MISSING_TIMESTAMP, "the body has no webhookTimestamp")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**15:
        raise VerificationError(Reason.MALFORMED_TIMESTAMP, "webhookTimestamp is not Unix ms")
    return value / 1000.0


@dataclass(frozen=True, slots=True)
class LinearVerifier:
    """Linear's body HMAC, then its signed timestamp against the tolerance."""

    keys: tuple[SigningKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw = header_text(headers, LINEAR_HEADER)
        if raw is None:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"header {LINEAR_HEADER} is required")
        offered = hexdecode_strict(raw.strip())
        expected = [hmac.new(k, body, hashlib.sha256).digest() for k in active_keys(self.keys, now)]
        if not any_matches(expected, [offered]):
            raise VerificationError(Reason.BAD_SIGNATURE)
        timestamp = _body_timestamp(body)
        check_window(timestamp, now, self.tolerance)
        return Verified(timestamp)
