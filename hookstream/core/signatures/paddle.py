"""Paddle Billing: ``Paddle-Signature: ts=<unix>;h1=<hex>[;h1=...]``, HMAC-SHA256 keyed
with the notification destination's secret over ``{ts}:{body}``. While a secret rotates
Paddle sends one h1 per active secret; any may match.
"""

from __future__ import annotations

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
from hookstream.core.signatures.parsing import check_timestamp, header_text, hexdecode_strict

PADDLE_HEADER = "Paddle-Signature"


def parse_paddle_signature(raw: str) -> tuple[str, list[bytes]]:
    """``ts=..;h1=..`` into the timestamp text and the h1 digests; unknown keys ignored."""
    stamp: str | None = None
    offered: list[bytes] = []
    for item in raw.split(";"):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "ts" and stamp is None:
            stamp = value
        elif key == "h1":
            try:
                offered.append(hexdecode_strict(value))
            except VerificationError:
                continue
    if stamp is None:
        raise VerificationError(Reason.MISSING_TIMESTAMP, "Paddle-Signature has no ts=")
    if not offered:
        raise VerificationError(Reason.MALFORMED_SIGNATURE, "Paddle-Signature has no h1 signature")
    return stamp, offered


def sign_paddle(key: bytes, timestamp: int, body: bytes) -> str:
    """The ``Paddle-Signature`` value Paddle sends for one secret."""
    digest = hmac.new(key, f"{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return f"ts={timestamp};h1={digest}"


@dataclass(frozen=True, slots=True)
class PaddleVerifier:
    """Paddle's ts/h1 header, with the timestamp inside the tolerance."""

    keys: tuple[SigningKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw = header_text(headers, PADDLE_HEADER)
        if raw is None:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"header {PADDLE_HEADER} is required")
        stamp, offered = parse_paddle_signature(raw)
        timestamp = check_timestamp(stamp, now, self.tolerance)
        content = f"{stamp}:".encode() + body
        expected = [
            hmac.new(k, content, hashlib.sha256).digest() for k in active_keys(self.keys, now)
        ]
        if not any_matches(expected, offered):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp)
