"""Square: ``x-square-hmacsha256-signature: <base64>``, HMAC-SHA256 keyed with the
subscription's signature key over the notification URL (exactly as configured at
Square) followed by the raw body. Square signs no timestamp.
"""

from __future__ import annotations

import base64
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
from hookstream.core.signatures.parsing import b64decode_strict, header_text, request_url

SQUARE_HEADER = "x-square-hmacsha256-signature"


def sign_square(key: bytes, notification_url: str, body: bytes) -> str:
    """The signature header value Square sends for `body` posted to `notification_url`."""
    digest = hmac.new(key, notification_url.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class SquareVerifier:
    """Square's URL-plus-body signature."""

    keys: tuple[SigningKey, ...]
    public_url: str

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw = header_text(headers, SQUARE_HEADER)
        if raw is None:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"header {SQUARE_HEADER} is required")
        offered = b64decode_strict(raw.strip())
        content = request_url(self.public_url, query).encode("utf-8", "surrogatepass") + body
        expected = [
            hmac.new(k, content, hashlib.sha256).digest() for k in active_keys(self.keys, now)
        ]
        if not any_matches(expected, [offered]):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(None)
