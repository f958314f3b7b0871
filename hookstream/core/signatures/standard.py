"""Standard Webhooks (``webhook-*`` headers) and Svix, which signs the same way under ``svix-*``.

Signed content: ``{id}.{timestamp}.{body}``, HMAC-SHA256 keyed with the base64 part of
a ``whsec_`` secret; the signature header is a space-separated list of ``v1,<base64>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
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
from hookstream.core.signatures.parsing import (
    check_timestamp,
    header_text,
    parse_standard_signatures,
)


def header_family(headers: Mapping[str, str]) -> str:
    """``webhook`` when the request carries Standard Webhooks headers, else ``svix``."""
    return "webhook" if "webhook-signature" in headers else "svix"


def standard_secret(secret: str) -> bytes:
    """``whsec_`` + base64 (padding optional, as senders print it) into the key bytes."""
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret must be whsec_ followed by base64") from None
    if not key:
        raise ValueError("a Standard Webhooks secret must not be empty")
    return key


def sign_standard(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one key (used for delivery too)."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class StandardVerifier:
    """Standard Webhooks / Svix: id, timestamp and body signed together."""

    keys: tuple[SigningKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        family = header_family(headers)
        signature = header_text(headers, f"{family}-signature")
        msg_id = header_text(headers, f"{family}-id")
        if not signature or not msg_id:
            raise VerificationError(
                Reason.MISSING_SIGNATURE, f"{family}-id and {family}-signature are required"
            )
        raw_stamp = header_text(headers, f"{family}-timestamp")
        timestamp = check_timestamp(raw_stamp, now, self.tolerance)
        offered = parse_standard_signatures(signature)
        content = f"{msg_id}.{raw_stamp}.".encode() + body
        expected = [
            hmac.new(k, content, hashlib.sha256).digest() for k in active_keys(self.keys, now)
        ]
        if not any_matches(expected, offered):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp)
